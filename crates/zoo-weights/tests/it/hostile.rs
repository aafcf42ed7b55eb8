//! Broken and hostile inputs: each must give its specific error, never a panic, and leave no
//! output folder (not even a temp folder) behind.

use std::fs;
use std::path::Path;

use zoo_progress::{CancelToken, Event, Progress, Silent};
use zoo_weights::delta::{self, Algorithm, DeltaOptions};
use zoo_weights::gguf::{self, MetaValue};
use zoo_weights::{Checkpoint, GgmlType, WeightsError};

use crate::util::entries;

/// A safetensors file: header JSON as given, then `data_len` zero bytes.
fn st(header: &str, data_len: usize) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.resize(out.len() + data_len, 0);
    out
}

/// One f16 tensor `w` of shape [2, 3].
fn good_st() -> Vec<u8> {
    st(r#"{"w":{"dtype":"F16","shape":[2,3],"data_offsets":[0,12]}}"#, 12)
}

/// A zip of stored entries laid out as torch writes them (`method` 0) or compressed.
fn zip(entries: &[(&str, &[u8])], method: u16) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in entries {
        let off = out.len() as u32;
        out.extend_from_slice(b"PK\x03\x04\x14\x00\x00\x00");
        out.extend_from_slice(&method.to_le_bytes());
        out.extend_from_slice(&[0; 16]);
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        central.extend_from_slice(b"PK\x01\x02\x14\x00\x14\x00\x00\x00");
        central.extend_from_slice(&method.to_le_bytes());
        central.extend_from_slice(&[0; 8]);
        central.extend_from_slice(&(data.len() as u32).to_le_bytes());
        central.extend_from_slice(&(data.len() as u32).to_le_bytes());
        central.extend_from_slice(&(name.len() as u16).to_le_bytes());
        central.extend_from_slice(&[0; 12]);
        central.extend_from_slice(&off.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let cd_off = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(b"PK\x05\x06\x00\x00\x00\x00");
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_off.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out
}

/// A torch-style state dict `{"w": tensor}` (f16 [2, 3], strides as given) whose rebuild
/// function is `module.name`.
fn state_dict(module: &str, name: &str, stride: (u8, u8)) -> Vec<u8> {
    let mut p = b"\x80\x02}q\x00(X\x01\x00\x00\x00w".to_vec();
    p.extend_from_slice(format!("c{module}\n{name}\n").as_bytes());
    p.extend_from_slice(
        b"((X\x07\x00\x00\x00storagectorch\nHalfStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x06tQ",
    );
    p.extend_from_slice(&[b'K', 0, b'K', 2, b'K', 3, 0x86, b'K', stride.0, b'K', stride.1, 0x86, 0x89]);
    p.extend_from_slice(b"ccollections\nOrderedDict\n)RtRu.");
    p
}

fn torch_bin(pickle: &[u8]) -> Vec<u8> {
    zip(&[("archive/data.pkl", pickle), ("archive/byteorder", b"little"), ("archive/data/0", &[0u8; 12])], 0)
}

/// Writes `files` into `delta/` next to a good `base/`, runs `apply`, and returns its error
/// after checking that nothing but the two inputs is left in the folder.
fn refused(files: &[(&str, Vec<u8>)]) -> WeightsError {
    refused_with(&[("model.safetensors", good_st())], files)
}

fn refused_with(base: &[(&str, Vec<u8>)], files: &[(&str, Vec<u8>)]) -> WeightsError {
    let dir = tempfile::tempdir().unwrap();
    for (side, list) in [("base", base), ("delta", files)] {
        fs::create_dir(dir.path().join(side)).unwrap();
        for (name, bytes) in list {
            fs::write(dir.path().join(side).join(name), bytes).unwrap();
        }
    }
    let err = delta::apply(
        &dir.path().join("base"),
        &dir.path().join("delta"),
        Algorithm::Fastchat,
        &dir.path().join("out"),
        &DeltaOptions::default(),
        &Silent,
        &CancelToken::new(),
    )
    .expect_err("hostile input was accepted");
    assert_eq!(entries(dir.path()), ["base", "delta"], "output left behind after {err}");
    // The message is printable and names something.
    assert!(!err.to_string().is_empty());
    err
}

#[test]
fn empty_file() {
    let e = refused(&[("model.safetensors", vec![])]);
    assert!(matches!(e, WeightsError::TooShort { len: 0, .. }), "{e:?}");
}

#[test]
fn truncated_safetensors() {
    let e = refused(&[("model.safetensors", good_st()[..5].to_vec())]);
    assert!(matches!(e, WeightsError::TooShort { len: 5, .. }), "{e:?}");
    // Cut inside the data: the header no longer tiles the file.
    let good = good_st();
    let e = refused(&[("model.safetensors", good[..good.len() - 1].to_vec())]);
    assert!(matches!(e, WeightsError::OffsetsOutOfRange { ref tensor, .. } if tensor == "w"), "{e:?}");
}

#[test]
fn header_length_past_end() {
    let mut bytes = good_st();
    bytes[..8].copy_from_slice(&10_000u64.to_le_bytes());
    let e = refused(&[("model.safetensors", bytes)]);
    assert!(matches!(e, WeightsError::SafetensorsHeaderLength { header_len: 10_000, .. }), "{e:?}");
    let mut bytes = good_st();
    bytes[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    let e = refused(&[("model.safetensors", bytes)]);
    assert!(matches!(e, WeightsError::SafetensorsHeaderLength { .. }), "{e:?}");
}

#[test]
fn header_not_json_or_not_an_object() {
    let e = refused(&[("model.safetensors", st("{\"w\": nope}", 0))]);
    assert!(matches!(e, WeightsError::SafetensorsHeaderJson { .. }), "{e:?}");
    let e = refused(&[("model.safetensors", st("[1, 2, 3]", 0))]);
    assert!(matches!(e, WeightsError::SafetensorsHeaderNotObject { .. }), "{e:?}");
}

#[test]
fn offsets_out_of_range() {
    let e = refused(&[("model.safetensors", st(r#"{"w":{"dtype":"F16","shape":[2,3],"data_offsets":[0,1200]}}"#, 12))]);
    assert!(matches!(e, WeightsError::OffsetsOutOfRange { end: 1200, data_len: 12, .. }), "{e:?}");
}

#[test]
fn overlapping_offsets() {
    let h = r#"{"w":{"dtype":"F16","shape":[2,3],"data_offsets":[0,12]},"v":{"dtype":"F16","shape":[2],"data_offsets":[8,12]}}"#;
    let e = refused(&[("model.safetensors", st(h, 12))]);
    assert!(
        matches!(e, WeightsError::OffsetsNotContiguous { ref tensor, expected_begin: 12, .. } if tensor == "v"),
        "{e:?}"
    );
}

#[test]
fn unknown_dtype() {
    let e = refused(&[("model.safetensors", st(r#"{"w":{"dtype":"F17","shape":[2,3],"data_offsets":[0,12]}}"#, 12))]);
    assert!(matches!(e, WeightsError::UnknownDtype { ref dtype, .. } if dtype == "F17"), "{e:?}");
}

#[test]
fn shape_disagrees_with_byte_count() {
    let e = refused(&[("model.safetensors", st(r#"{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,12]}}"#, 12))]);
    assert!(matches!(e, WeightsError::ByteCountMismatch { expected: 24, actual: 12, .. }), "{e:?}");
}

fn index(map: &[(&str, &str)]) -> Vec<u8> {
    let m: serde_json::Map<String, serde_json::Value> =
        map.iter().map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string()))).collect();
    serde_json::to_vec(&serde_json::json!({ "metadata": {}, "weight_map": m })).unwrap()
}

#[test]
fn index_names_a_missing_shard() {
    let e = refused(&[("model.safetensors.index.json", index(&[("w", "model-00001-of-00002.safetensors")]))]);
    assert!(
        matches!(e, WeightsError::MissingShard { ref shard, .. } if shard == "model-00001-of-00002.safetensors"),
        "{e:?}"
    );
}

#[test]
fn index_path_outside_the_folder() {
    for bad in ["../base/model.safetensors", "/etc/passwd", "sub/../../x.safetensors"] {
        let e = refused(&[("model.safetensors.index.json", index(&[("w", bad)]))]);
        assert!(matches!(e, WeightsError::ShardOutsideFolder { ref shard, .. } if shard == bad), "{e:?}");
    }
}

#[test]
fn index_symlink_escaping_the_folder() {
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("secret.safetensors");
    fs::write(&target, good_st()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("model.safetensors.index.json"), index(&[("w", "link.safetensors")])).unwrap();
    std::os::unix::fs::symlink(&target, dir.path().join("link.safetensors")).unwrap();
    let e = Checkpoint::open(dir.path()).unwrap_err();
    assert!(matches!(e, WeightsError::ShardOutsideFolder { .. }), "{e:?}");
}

#[test]
fn duplicate_tensor_across_shards() {
    // `w` in both shards (the index points at `a`): refused rather than silently picking one.
    let e = refused(&[
        ("model.safetensors.index.json", index(&[("w", "a.safetensors"), ("v", "b.safetensors")])),
        ("a.safetensors", good_st()),
        (
            "b.safetensors",
            st(
                r#"{"w":{"dtype":"F16","shape":[2,3],"data_offsets":[0,12]},"v":{"dtype":"F16","shape":[0],"data_offsets":[12,12]}}"#,
                12,
            ),
        ),
    ]);
    assert!(matches!(e, WeightsError::DuplicateTensor { ref tensor, .. } if tensor == "w"), "{e:?}");
}

#[test]
fn pickle_calling_os_system() {
    let exploit = b"\x80\x02cos\nsystem\nX\x0c\x00\x00\x00touch /tmp/x\x85R.";
    let e = refused(&[("pytorch_model.bin", torch_bin(exploit))]);
    assert!(matches!(e, WeightsError::PickleGlobalRefused { ref global, .. } if global == "os.system"), "{e:?}");
    // The same global hidden where a tensor rebuild function belongs.
    let e = refused(&[("pytorch_model.bin", torch_bin(&state_dict("posix", "system", (3, 1))))]);
    assert!(matches!(e, WeightsError::PickleGlobalRefused { ref global, .. } if global == "posix.system"), "{e:?}");
}

#[test]
fn pickle_with_builtins_eval() {
    // Protocol 4 STACK_GLOBAL, as `pickle.dumps(..., protocol=4)` writes it.
    let exploit = b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00\x8c\x08builtins\x94\x8c\x04eval\x94\x93\x94\x8c\x041+1\x94\x85\x94R\x94.";
    let e = refused(&[("pytorch_model.bin", torch_bin(exploit))]);
    assert!(matches!(e, WeightsError::PickleGlobalRefused { ref global, .. } if global == "builtins.eval"), "{e:?}");
}

#[test]
fn pickle_with_other_globals_off_the_list() {
    for (m, n) in [("subprocess", "Popen"), ("torch", "load"), ("torch._utils", "_rebuild_device_tensor_from_numpy")] {
        let e = refused(&[("pytorch_model.bin", torch_bin(&state_dict(m, n, (3, 1))))]);
        assert!(
            matches!(e, WeightsError::PickleGlobalRefused { ref global, .. } if *global == format!("{m}.{n}")),
            "{e:?}"
        );
    }
}

#[test]
fn hand_made_bin_is_read_and_non_contiguous_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("pytorch_model.bin");
    fs::write(&p, torch_bin(&state_dict("torch._utils", "_rebuild_tensor_v2", (3, 1)))).unwrap();
    let ck = Checkpoint::open(&p).unwrap();
    assert_eq!(ck.get("w").unwrap().shape, [2, 3]);
    let e = refused(&[("pytorch_model.bin", torch_bin(&state_dict("torch._utils", "_rebuild_tensor_v2", (1, 2))))]);
    assert!(matches!(e, WeightsError::NonContiguous { ref stride, .. } if stride == &[1, 2]), "{e:?}");
}

#[test]
fn bin_that_is_not_a_zip() {
    let e = refused(&[("pytorch_model.bin", b"this is not a checkpoint at all".to_vec())]);
    assert!(matches!(e, WeightsError::UnknownFormat { .. }), "{e:?}");
}

#[test]
fn legacy_torch_save_format() {
    let legacy = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.\x80\x02M\xe9\x03.".to_vec();
    let e = refused(&[("pytorch_model.bin", legacy)]);
    assert!(matches!(e, WeightsError::LegacyTorch { .. }), "{e:?}");
}

#[test]
fn zip_with_broken_central_directory() {
    let good = torch_bin(&state_dict("torch._utils", "_rebuild_tensor_v2", (3, 1)));
    // Central directory offset pointing past the end.
    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 6..n - 2].copy_from_slice(&u32::MAX.to_le_bytes());
    let e = refused(&[("pytorch_model.bin", bad)]);
    assert!(matches!(e, WeightsError::Zip { .. }), "{e:?}");
    // An absurd entry count.
    let mut bad = good.clone();
    bad[n - 12..n - 10].copy_from_slice(&u16::MAX.to_le_bytes());
    let e = refused(&[("pytorch_model.bin", bad)]);
    assert!(matches!(e, WeightsError::Zip { .. }), "{e:?}");
    // No end record at all.
    let e = refused(&[("pytorch_model.bin", good[..n - 22].to_vec())]);
    assert!(matches!(e, WeightsError::Zip { .. }), "{e:?}");
}

#[test]
fn compressed_zip_entry() {
    let pkl = state_dict("torch._utils", "_rebuild_tensor_v2", (3, 1));
    let bytes = zip(&[("archive/data.pkl", &pkl), ("archive/data/0", &[0u8; 12])], 8);
    let e = refused(&[("pytorch_model.bin", bytes)]);
    assert!(matches!(e, WeightsError::ZipCompressed { method: 8, .. }), "{e:?}");
}

fn good_gguf() -> Vec<u8> {
    gguf::encode(
        &[("general.architecture", MetaValue::String("llama".into()))],
        &[("w", &[3, 2], GgmlType::F16, &[0; 12])],
    )
}

#[test]
fn gguf_bad_magic_and_version() {
    let mut bytes = good_gguf();
    bytes[..4].copy_from_slice(b"GGUX");
    let e = refused(&[("model.gguf", bytes)]);
    assert!(matches!(e, WeightsError::GgufBadMagic { magic, .. } if &magic == b"GGUX"), "{e:?}");
    let mut bytes = good_gguf();
    bytes[4..8].copy_from_slice(&0x0300_0000u32.to_le_bytes());
    let e = refused(&[("model.gguf", bytes)]);
    assert!(matches!(e, WeightsError::GgufVersion { version: 0x0300_0000, .. }), "{e:?}");
}

#[test]
fn gguf_absurd_tensor_count() {
    let mut bytes = good_gguf();
    bytes[8..16].copy_from_slice(&(1u64 << 60).to_le_bytes());
    let e = refused(&[("model.gguf", bytes)]);
    assert!(
        matches!(e, WeightsError::GgufAbsurd { ref what, value, .. } if what == "tensor count" && value == 1 << 60),
        "{e:?}"
    );
}

#[test]
fn gguf_absurd_string_length() {
    let mut bytes = good_gguf();
    // The first key's length follows the 24-byte header.
    bytes[24..32].copy_from_slice(&(u64::MAX - 3).to_le_bytes());
    let e = refused(&[("model.gguf", bytes)]);
    assert!(matches!(e, WeightsError::GgufAbsurd { ref what, .. } if what.contains("length")), "{e:?}");
}

#[test]
fn gguf_is_readable_but_not_a_delta_input() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.gguf");
    fs::write(&p, good_gguf()).unwrap();
    let ck = Checkpoint::open(&p).unwrap();
    let g = ck.gguf().unwrap();
    assert_eq!(g.get("general.architecture").and_then(MetaValue::as_str), Some("llama"));
    assert_eq!(ck.get("w").unwrap().shape, [2, 3]);
}

#[test]
fn shapes_dtypes_and_names_that_no_rule_explains() {
    let e = refused(&[("model.safetensors", st(r#"{"w":{"dtype":"F16","shape":[3,2],"data_offsets":[0,12]}}"#, 12))]);
    assert!(
        matches!(e, WeightsError::DeltaMismatch { ref tensor, ref base_shape, ref other_shape, other: "delta", .. }
            if tensor == "w" && base_shape == &[2, 3] && other_shape == &[3, 2]),
        "{e:?}"
    );
    let e = refused(&[("model.safetensors", st(r#"{"w":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,12]}}"#, 12))]);
    assert!(matches!(e, WeightsError::DeltaMismatch { reason: "dtypes differ", .. }), "{e:?}");
    let e = refused(&[("model.safetensors", st(r#"{"v":{"dtype":"F16","shape":[2,3],"data_offsets":[0,12]}}"#, 12))]);
    assert!(
        matches!(e, WeightsError::DeltaMissingTensor { ref tensor, present: "delta", .. } if tensor == "v"),
        "{e:?}"
    );
    // A vocabulary matrix may grow, other tensors may not.
    let base = st(r#"{"model.embed_tokens.weight":{"dtype":"F16","shape":[2,3],"data_offsets":[0,12]}}"#, 12);
    let smaller = st(r#"{"model.embed_tokens.weight":{"dtype":"F16","shape":[1,3],"data_offsets":[0,6]}}"#, 6);
    let e = refused_with(&[("model.safetensors", base)], &[("model.safetensors", smaller)]);
    assert!(matches!(e, WeightsError::DeltaMismatch { .. }), "{e:?}");
}

#[test]
fn existing_destination_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    for side in ["base", "delta", "out"] {
        fs::create_dir(dir.path().join(side)).unwrap();
    }
    fs::write(dir.path().join("base/model.safetensors"), good_st()).unwrap();
    fs::write(dir.path().join("delta/model.safetensors"), good_st()).unwrap();
    fs::write(dir.path().join("out/keep"), b"mine").unwrap();
    let e = delta::apply(
        &dir.path().join("base"),
        &dir.path().join("delta"),
        Algorithm::Fastchat,
        &dir.path().join("out"),
        &DeltaOptions::default(),
        &Silent,
        &CancelToken::new(),
    )
    .unwrap_err();
    assert!(matches!(e, WeightsError::DestinationExists { .. }), "{e:?}");
    assert_eq!(entries(&dir.path().join("out")), ["keep"]);
    assert_eq!(entries(dir.path()), ["base", "delta", "out"]);
}

/// Cancels its token on the first progress advance.
struct CancelOnAdvance(CancelToken);

impl Progress for CancelOnAdvance {
    fn event(&self, event: Event) {
        if matches!(event, Event::Advance { .. }) {
            self.0.cancel();
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn cancellation_leaves_no_folder() {
    let root = crate::util::shared_fixtures().join("delta");
    let dir = tempfile::tempdir().unwrap();
    let cancel = CancelToken::new();
    let opts = DeltaOptions { chunk_size: 4096, ..DeltaOptions::default() };
    let e = delta::apply(
        &root.join("base"),
        &root.join("delta"),
        Algorithm::Fastchat,
        &dir.path().join("out"),
        &opts,
        &CancelOnAdvance(cancel.clone()),
        &cancel,
    )
    .unwrap_err();
    assert!(matches!(e, WeightsError::Cancelled), "{e:?}");
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
}

#[test]
fn failure_in_the_middle_of_writing_leaves_no_folder() {
    let root = crate::util::shared_fixtures().join("delta");
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&root.join("base"), &dir.path().join("base"));
    let base = Checkpoint::open(&dir.path().join("base")).unwrap();
    let delta_ck = Checkpoint::open(&root.join("delta")).unwrap();
    // The second shard shrinks after the headers were read: reads fail halfway through.
    let shard = dir.path().join("base/model-00002-of-00002.safetensors");
    fs::OpenOptions::new().write(true).open(&shard).unwrap().set_len(1000).unwrap();
    let opts = DeltaOptions { chunk_size: 4096, ..DeltaOptions::default() };
    let out = dir.path().join("out");
    let e = delta::apply_checkpoints(&base, &delta_ck, Algorithm::Fastchat, &out, &opts, &Silent, &CancelToken::new())
        .unwrap_err();
    assert!(matches!(e, WeightsError::Io { ref path, .. } if path == &shard), "{e:?}");
    assert_eq!(entries(dir.path()), ["base"]);
}

/// Flips each byte of `ranges` in a copy of `src` in turn and opens the result: any outcome
/// but a panic is fine. Returns how many variants opened without error.
fn flip_each(src: &Path, ranges: &[std::ops::Range<usize>]) -> usize {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(src.file_name().unwrap());
    fs::copy(src, &p).unwrap();
    let f = fs::OpenOptions::new().read(true).write(true).open(&p).unwrap();
    let mut ok = 0;
    for r in ranges {
        for i in r.clone() {
            let mut b = [0u8];
            f.read_exact_at(&mut b, i as u64).unwrap();
            f.write_all_at(&[b[0] ^ 0xA5], i as u64).unwrap();
            if let Ok(ck) = Checkpoint::open(&p) {
                ok += 1;
                let mut buf = [0u8; 64];
                for t in ck.tensors() {
                    ck.read_chunk(t, 0, &mut buf).unwrap();
                }
            }
            f.write_all_at(&b, i as u64).unwrap();
        }
    }
    ok
}

#[test]
fn corrupting_real_checkpoints_never_panics() {
    let root = crate::util::shared_fixtures().join("delta");
    let bin = root.join("delta/pytorch_model-00001-of-00002.bin");
    let len = fs::metadata(&bin).unwrap().len() as usize;
    // data.pkl and the first local header, then the central directory and end records.
    let opened = flip_each(&bin, &[0..1300, len - 2300..len]);
    assert!(opened < 3600, "{opened}");
    let st = root.join("base/model-00002-of-00002.safetensors");
    flip_each(&st, &[0..400, 400..900]);
}

//! GGML block quantization against `tests/fixtures/reference/quant/quant-shared.safetensors`: blocks
//! made by gguf-py (Q4_0, Q4_1, Q5_0, Q8_0) and by ggml's `ggml_quantize_chunk` (Q5_1, Q4_K,
//! Q6_K) from the same f32 rows; ours must be byte-identical. Q5_K came later: its blocks for
//! those rows, and llama-quantize's own Q5_K of real SmolLM2 rows (with ggml's dequantization
//! of them), are in `tests/fixtures/quant/q5_k-llama.safetensors` (made by `make_q5_k.sh`).

use std::path::PathBuf;

use zoo_weights::quant::{self, QuantError, QuantType};
use zoo_weights::{Checkpoint, Dtype};

fn fixture() -> Checkpoint {
    let path =
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/reference/quant/quant-shared.safetensors"));
    assert!(
        path.is_file(),
        "quantization fixture missing at {}: it is part of the repository \
         (see tests/fixtures/reference/README.md, `quant/`)",
        path.display()
    );
    Checkpoint::open(&path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

/// Our own fixture of llama.cpp-made Q5_K blocks (see `tests/fixtures/quant/make_q5_k.sh`).
fn q5_k_fixture() -> Checkpoint {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/quant/q5_k-llama.safetensors"));
    assert!(
        path.is_file(),
        "Q5_K fixture missing at {}: make it with tests/fixtures/quant/make_q5_k.sh (needs scripts/llama-cpp.sh)",
        path.display()
    );
    Checkpoint::open(&path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

/// The reference blocks `NAME.<type>` for an input of the shared fixture: from the shared
/// fixture, or (Q5_K) from ours.
fn reference_blocks(shared: &Checkpoint, ours: &Checkpoint, name: &str, t: QuantType) -> Option<Vec<u8>> {
    let ref_name = format!("{name}.{}", t.name().to_lowercase());
    let ck = if shared.get(&ref_name).is_some() { shared } else { ours };
    ck.get(&ref_name).map(|info| ck.read_to_vec(info, 1 << 26).unwrap())
}

/// The f32 values of a tensor.
fn f32_values(ck: &Checkpoint, name: &str) -> Vec<f32> {
    let info = ck.get(name).unwrap_or_else(|| panic!("{name} missing from the fixture"));
    assert_eq!(info.dtype, Dtype::F32, "{name}");
    let bytes = ck.read_to_vec(info, 1 << 26).unwrap();
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
}

/// The f32 inputs of the fixture: (name, rows, values per row, values).
fn inputs(ck: &Checkpoint) -> Vec<(String, usize, usize, Vec<f32>)> {
    let out: Vec<_> = ck
        .tensors()
        .iter()
        .filter(|t| t.dtype == Dtype::F32)
        .map(|t| {
            let bytes = ck.read_to_vec(t, 1 << 26).unwrap();
            let values = bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
            let [rows, cols] = t.shape[..] else { panic!("{}: expected a 2-d input, got {:?}", t.name, t.shape) };
            (t.name.clone(), rows as usize, cols as usize, values)
        })
        .collect();
    assert!(!out.is_empty(), "the fixture has no f32 inputs");
    out
}

#[test]
fn quantizers_are_byte_exact_with_ggml_and_gguf_py() {
    let ck = fixture();
    let ours = q5_k_fixture();
    let mut checked = Vec::new();
    let mut failures = Vec::new();
    for (name, rows, cols, x) in inputs(&ck) {
        for t in QuantType::ALL {
            let ref_name = format!("{name}.{}", t.name().to_lowercase());
            let Some(want) = reference_blocks(&ck, &ours, &name, t) else { continue };
            let row_bytes = t.row_bytes(cols).unwrap();
            assert_eq!(want.len(), rows * row_bytes, "{ref_name}: reference size");
            let mut got = vec![0u8; row_bytes];
            for (r, (xr, wr)) in x.chunks_exact(cols).zip(want.chunks_exact(row_bytes)).enumerate() {
                quant::quantize_row(t, xr, &mut got).unwrap();
                if got != wr {
                    let ts = t.type_size();
                    let (b, (g, w)) =
                        got.chunks_exact(ts).zip(wr.chunks_exact(ts)).enumerate().find(|(_, (g, w))| g != w).unwrap();
                    let n_bad = got.chunks_exact(ts).zip(wr.chunks_exact(ts)).filter(|(g, w)| g != w).count();
                    failures.push(format!(
                        "{ref_name}: row {r}: {n_bad} of {} blocks differ; first is block {b}\n  ours:      {g:02x?}\n  reference: {w:02x?}",
                        row_bytes / ts
                    ));
                    break;
                }
            }
            checked.push(ref_name);
        }
    }
    assert!(failures.is_empty(), "{} tensors differ:\n{}", failures.len(), failures.join("\n"));
    // Every type must have been checked on something: no silent skips.
    for t in QuantType::ALL {
        let suffix = format!(".{}", t.name().to_lowercase());
        assert!(checked.iter().any(|n| n.ends_with(&suffix)), "no reference tensor for {t} in the fixture");
    }
}

#[test]
fn parallel_quantization_gives_the_same_bytes() {
    let ck = fixture();
    for (name, _rows, cols, x) in inputs(&ck) {
        for t in QuantType::ALL {
            let mut one = vec![0u8; t.row_bytes(x.len()).unwrap()];
            quant::quantize_row(t, &x, &mut one).unwrap();
            for threads in [0, 2, 3, 64] {
                let mut many = vec![0u8; one.len()];
                quant::quantize_rows_parallel(t, &x, cols, &mut many, threads).unwrap();
                assert!(one == many, "{name} {t} threads={threads}");
            }
        }
    }
}

/// Dequantizing the reference blocks gives values close to the input: a bound per value from
/// the block's quantization step, and an overall relative RMS error per type.
#[test]
fn dequantized_reference_blocks_are_close_to_the_input() {
    let ck = fixture();
    let ours = q5_k_fixture();
    for (name, _rows, _cols, x) in inputs(&ck) {
        for t in QuantType::ALL {
            let Some(q) = reference_blocks(&ck, &ours, &name, t) else { continue };
            let mut back = vec![0.0f32; x.len()];
            quant::dequantize_row(t, &q, &mut back).unwrap();

            // Our own quantizer's blocks dequantize to the same values.
            let mut ours = vec![0u8; q.len()];
            quant::quantize_row(t, &x, &mut ours).unwrap();
            let mut back2 = vec![0.0f32; x.len()];
            quant::dequantize_row(t, &ours, &mut back2).unwrap();
            assert_eq!(back, back2, "{name} {t}");

            // Per block of 32: error at most one step (amplitude / levels), with slack for the
            // f16 scales and the k-quants' 6-bit scale grid.
            let levels = match t {
                QuantType::Q4_0 => 8.0,
                QuantType::Q4_1 => 15.0 / 2.0,
                QuantType::Q5_0 => 16.0,
                QuantType::Q5_1 => 31.0 / 2.0,
                QuantType::Q8_0 => 127.0,
                // Q5_K's fifth bit buys little where the 6-bit scale grid dominates (small
                // sub-blocks next to heavy-tailed ones): measured 6.6 on heavy_tail_16x512.
                QuantType::Q4K | QuantType::Q5K => 15.0 / 4.0,
                QuantType::Q6K => 31.0 / 4.0,
            };
            for (b, (xs, ys)) in x.chunks(32).zip(back.chunks(32)).enumerate() {
                let amax = xs.iter().fold(0.0f32, |a, v| a.max(v.abs()));
                let worst = xs.iter().zip(ys).fold(0.0f32, |a, (x, y)| a.max((x - y).abs()));
                assert!(worst <= amax / levels * 1.01, "{name} {t}: block {b}: error {worst} for amplitude {amax}");
            }

            let rms = (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt();
            let rmse = (x.iter().zip(&back).map(|(a, b)| (a - b) * (a - b)).sum::<f32>() / x.len() as f32).sqrt();
            // Measured on the fixture: at most 0.009, 0.027, 0.067 and 0.137 (heavy-tailed rows).
            let limit = match t {
                QuantType::Q8_0 => 0.015,
                QuantType::Q6K => 0.04,
                QuantType::Q5_0 | QuantType::Q5_1 | QuantType::Q5K => 0.08,
                QuantType::Q4_0 | QuantType::Q4_1 | QuantType::Q4K => 0.2,
            };
            assert!(rmse / rms < limit, "{name} {t}: relative RMS error {}", rmse / rms);
        }
    }
}

/// llama.cpp's own Q5_K on real weights: `llama-quantize --pure ... Q5_K_S` of SmolLM2's F16
/// GGUF (rows of 1536 from three `ffn_down` tensors). Our quantizer must give the same bytes,
/// our dequantizer the values ggml's `dequantize_row_q5_K` gave for them (bit for bit: both
/// compute `d * sc * q - dmin * m` in f32 without fused multiply-adds), and those values must be
/// close to the input.
#[test]
fn q5_k_matches_llama_quantize_on_smollm2_rows() {
    let ck = q5_k_fixture();
    let t = QuantType::Q5K;
    let names: Vec<String> = ck
        .tensors()
        .iter()
        .filter(|i| i.name.ends_with(".weight") && i.dtype == Dtype::F32)
        .map(|i| i.name.clone())
        .collect();
    assert_eq!(names.len(), 3, "expected three SmolLM2 tensors in the fixture, got {names:?}");
    for name in names {
        let x = f32_values(&ck, &name);
        let want = ck.read_to_vec(ck.get(&format!("{name}.q5_k")).unwrap(), 1 << 26).unwrap();
        let ggml_back = f32_values(&ck, &format!("{name}.q5_k.f32"));
        let cols = 1536;
        let row_bytes = t.row_bytes(cols).unwrap();
        assert_eq!((x.len() % cols, want.len()), (0, x.len() / cols * row_bytes), "{name}: fixture shapes");

        let mut got = vec![0u8; want.len()];
        quant::quantize_rows_parallel(t, &x, cols, &mut got, 1).unwrap();
        for (b, (g, w)) in got.chunks_exact(176).zip(want.chunks_exact(176)).enumerate() {
            assert!(g == w, "{name}: block {b} differs\n  ours:      {g:02x?}\n  llama.cpp: {w:02x?}");
        }

        let mut back = vec![0.0f32; x.len()];
        quant::dequantize_row(t, &want, &mut back).unwrap();
        for (i, (a, b)) in back.iter().zip(&ggml_back).enumerate() {
            assert!(a.to_bits() == b.to_bits(), "{name}: value {i}: ours {a}, ggml {b}");
        }

        // Sanity: 5 bits per value and 6-bit sub-block scales keep every value within about one
        // step of its sub-block's range, and the whole within a few percent.
        for (j, (xs, ys)) in x.chunks(32).zip(back.chunks(32)).enumerate() {
            let (lo, hi) = xs.iter().fold((0.0f32, 0.0f32), |(l, h), &v| (l.min(v), h.max(v)));
            let worst = xs.iter().zip(ys).fold(0.0f32, |a, (x, y)| a.max((x - y).abs()));
            assert!(worst <= (hi - lo) / 31.0 * 1.5, "{name}: sub-block {j}: error {worst} for range {lo}..{hi}");
        }
        let rms = (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt();
        let rmse = (x.iter().zip(&back).map(|(a, b)| (a - b) * (a - b)).sum::<f32>() / x.len() as f32).sqrt();
        assert!(rmse / rms < 0.05, "{name}: relative RMS error {}", rmse / rms);
    }
}

#[test]
fn lengths_that_are_not_whole_blocks_are_errors() {
    for t in QuantType::ALL {
        let n = t.block_size();
        let x = vec![1.0f32; n + 1];
        let mut y = vec![0u8; t.type_size() * 2];
        let err = quant::quantize_row(t, &x, &mut y).unwrap_err();
        assert!(
            matches!(err, QuantError::RowLength { len, block_size, .. } if len == n + 1 && block_size == n),
            "{err}"
        );
        assert!(err.to_string().contains(t.name()), "{err}");

        // Output of the wrong size, either way.
        for len in [t.type_size() - 1, t.type_size() + 1, 0] {
            let mut y = vec![0u8; len];
            let err = quant::quantize_row(t, &x[..n], &mut y).unwrap_err();
            assert!(
                matches!(err, QuantError::OutputLength { expected, got, .. } if expected == t.type_size() && got == len)
            );
        }

        let q = vec![0u8; t.type_size() + 1];
        let mut out = vec![0.0f32; n];
        let err = quant::dequantize_row(t, &q, &mut out).unwrap_err();
        assert!(matches!(err, QuantError::ByteLength { .. }), "{err}");
        let err = quant::dequantize_row(t, &q[..t.type_size()], &mut out[..n - 1]).unwrap_err();
        assert!(matches!(err, QuantError::OutputLength { .. }), "{err}");

        let x = vec![0.5f32; 3 * n];
        let mut y = vec![0u8; 3 * t.type_size()];
        let err = quant::quantize_rows_parallel(t, &x, 2 * n, &mut y, 2).unwrap_err();
        assert!(matches!(err, QuantError::RowCount { .. }), "{err}");
        let err = quant::quantize_rows_parallel(t, &x, n + 1, &mut y, 2).unwrap_err();
        assert!(matches!(err, QuantError::RowLength { .. }), "{err}");
        let err = quant::quantize_rows_parallel(t, &x, n, &mut y[1..], 2).unwrap_err();
        assert!(matches!(err, QuantError::OutputLength { .. }), "{err}");

        // Empty input is zero blocks, not an error.
        quant::quantize_row(t, &[], &mut []).unwrap();
        quant::dequantize_row(t, &[], &mut []).unwrap();
    }
}

#[test]
fn non_finite_and_extreme_inputs_do_not_panic() {
    let specials = [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MAX,
        f32::MIN,
        f32::MIN_POSITIVE,
        -f32::MIN_POSITIVE / 4.0,
        1e-40,
        1e-20,
        65504.0,
        1e6,
        -0.0,
    ];
    for t in QuantType::ALL {
        let n = t.block_size();
        let mut rows = Vec::new();
        for &s in &specials {
            rows.push(vec![s; n]); // all the same
            let mut one = vec![0.25f32; n]; // one odd value among ordinary ones
            one[n / 2 + 3] = s;
            rows.push(one);
            rows.push((0..n).map(|i| if i % 3 == 0 { s } else { -(i as f32) }).collect());
        }
        for x in rows {
            let mut y = vec![0u8; t.type_size()];
            quant::quantize_row(t, &x, &mut y).unwrap();
            let mut back = vec![0.0f32; n];
            quant::dequantize_row(t, &y, &mut back).unwrap();
        }
        // Arbitrary bytes dequantize without panicking too.
        let junk: Vec<u8> = (0..t.type_size() * 4).map(|i| (i * 37 + 11) as u8).collect();
        let mut back = vec![0.0f32; n * 4];
        quant::dequantize_row(t, &junk, &mut back).unwrap();
    }
}

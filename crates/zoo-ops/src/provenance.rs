//! Building the one provenance shape ([`Provenance`], stored with every local copy and every
//! measured result): the operation, its inputs, the hash of what it made, and zoo's version.

use zoo_registry::model::{Provenance, ProvenanceInput};

/// The version of zoo that made something.
pub const ZOO_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Provenance of `operation` from `inputs`, with this zoo's version.
pub fn made_by(operation: &str, inputs: Vec<ProvenanceInput>, model_hash: Option<String>) -> Provenance {
    Provenance {
        model_hash,
        operation: Some(operation.to_string()),
        inputs,
        zoo_version: Some(ZOO_VERSION.to_string()),
        ..Default::default()
    }
}

/// A hub repo at a commit.
pub fn repo(role: &str, repo: &str, revision: &str, commit: &str) -> ProvenanceInput {
    ProvenanceInput {
        role: role.into(),
        repo: Some(repo.into()),
        revision: Some(revision.into()).filter(|r: &String| !r.is_empty()),
        commit: Some(commit.into()).filter(|c: &String| !c.is_empty()),
        ..Default::default()
    }
}

/// A file or folder, with its (manifest) sha256 when known.
pub fn path(role: &str, path: &std::path::Path, sha256: Option<String>) -> ProvenanceInput {
    let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    ProvenanceInput { role: role.into(), path: Some(abs.display().to_string()), sha256, ..Default::default() }
}

/// A model asked through an OpenAI-compatible server.
pub fn endpoint(role: &str, url: &str, model: &str) -> ProvenanceInput {
    ProvenanceInput { role: role.into(), url: Some(url.into()), model: Some(model.into()), ..Default::default() }
}

/// A member of a PyPI package.
pub fn pypi(role: &str, package: &str, version: &str, member: &str, sha256: &str) -> ProvenanceInput {
    ProvenanceInput {
        role: role.into(),
        pypi: Some(format!("{package}=={version}")),
        member: Some(member.into()),
        sha256: Some(sha256.into()),
        ..Default::default()
    }
}

//! Hashing files: sha256 and git blob sha1, streaming and parallel over files.

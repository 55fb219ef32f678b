//! Writes the CycloneDX SBOM of a Rust image, in its build stage, where the facts are:
//!
//!     image-sbom BINARY RUNTIME_ROOT OUTPUT
//!
//! BINARY was built with `cargo auditable build` (its crate list is read from it); RUNTIME_ROOT
//! is the tree the runtime stage copies (`/runtime`: the binary, the shared libraries, the CA
//! bundle, …), each file of which is hashed and traced to its Debian package with `dpkg-query`.

mod cyclonedx;
mod debian;
mod embedded;

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

fn main() -> anyhow::Result<()> {
    let arguments: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [binary, root, output] = &arguments[..] else {
        bail!("usage: image-sbom BINARY RUNTIME_ROOT OUTPUT");
    };
    let crates = embedded::packages(
        &std::fs::read(binary).with_context(|| format!("cannot read {}", binary.display()))?,
    )?;
    let mut files = Vec::new();
    for path in regular_files(root)? {
        let in_image = Path::new("/").join(path.strip_prefix(root)?);
        files.push(cyclonedx::ImageFile {
            path: in_image.display().to_string(),
            sha256: hex(&Sha256::digest(std::fs::read(&path)?)),
            owner: debian::owner(&in_image)?,
        });
    }
    let bom = cyclonedx::document(&crates, &files, &debian::distribution()?)?;
    if let Some(directory) = output.parent() {
        std::fs::create_dir_all(directory)?;
    }
    std::fs::write(output, serde_json::to_vec_pretty(&bom)?)
        .with_context(|| format!("cannot write {}", output.display()))?;
    println!(
        "image-sbom: {} ({} crates, {} files) -> {}",
        binary.display(),
        crates.len(),
        files.len(),
        output.display()
    );
    Ok(())
}

/// Every regular file under `root`, sorted, so the document is the same for the same tree.
fn regular_files(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(directory) = pending.pop() {
        for entry in std::fs::read_dir(&directory)
            .with_context(|| format!("cannot list {}", directory.display()))?
        {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                found.push(entry.path());
            }
        }
    }
    found.sort();
    Ok(found)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

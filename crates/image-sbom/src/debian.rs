//! Which Debian package a file of the build stage comes from, asked of `dpkg-query` there.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DebianPackage {
    pub name: String,
    pub version: String,
    pub architecture: String,
}

/// The package that installed `path` (an absolute path in the build stage), or None for a file
/// no package owns (made by the build). A path reached through a symbolic link (`cp
/// --dereference` copies the link's target under the link's name) is asked again as its target.
pub fn owner(path: &Path) -> anyhow::Result<Option<DebianPackage>> {
    let mut candidates = vec![path.to_path_buf()];
    if let Ok(target) = std::fs::canonicalize(path)
        && target != path
    {
        candidates.push(target);
    }
    for candidate in candidates {
        let output = Command::new("dpkg-query")
            .arg("--search")
            .arg(&candidate)
            .output()
            .context("cannot run dpkg-query: build the SBOM in a Debian stage")?;
        if !output.status.success() {
            continue;
        }
        // "libc6:amd64: /lib/x86_64-linux-gnu/libc.so.6" (diversions start with "diversion by").
        let stdout = String::from_utf8_lossy(&output.stdout);
        let Some(name) = stdout
            .lines()
            .find(|line| !line.starts_with("diversion by"))
            .and_then(|line| line.split(": ").next())
        else {
            continue;
        };
        return package(name.split(',').next().unwrap_or(name).trim()).map(Some);
    }
    Ok(None)
}

fn package(name: &str) -> anyhow::Result<DebianPackage> {
    let output = Command::new("dpkg-query")
        .args([
            "--show",
            "--showformat",
            "${Package}\t${Version}\t${Architecture}",
            name,
        ])
        .output()
        .context("cannot run dpkg-query")?;
    if !output.status.success() {
        bail!("dpkg-query knows no installed package {name}");
    }
    let shown = String::from_utf8(output.stdout).context("dpkg-query's answer is not UTF-8")?;
    match shown.split('\t').collect::<Vec<_>>()[..] {
        [package, version, architecture] => Ok(DebianPackage {
            name: package.to_owned(),
            version: version.to_owned(),
            architecture: architecture.to_owned(),
        }),
        _ => bail!("dpkg-query answered {shown:?} for {name}"),
    }
}

/// "debian-12.11": the distribution the packages come from, from /etc/os-release.
pub fn distribution() -> anyhow::Result<String> {
    let release =
        std::fs::read_to_string("/etc/os-release").context("cannot read /etc/os-release")?;
    let field = |key: &str| {
        release.lines().find_map(|line| {
            line.strip_prefix(key)
                .and_then(|rest| rest.strip_prefix('='))
                .map(|value| value.trim_matches('"').to_owned())
        })
    };
    let id = field("ID").context("/etc/os-release has no ID")?;
    // VERSION_ID is the major release; the point release is in /etc/debian_version.
    let version = std::fs::read_to_string("/etc/debian_version")
        .map(|version| version.trim().to_owned())
        .ok()
        .or_else(|| field("VERSION_ID"))
        .context("neither /etc/debian_version nor VERSION_ID says the release")?;
    Ok(format!("{id}-{version}"))
}

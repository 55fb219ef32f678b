//! The CycloneDX 1.5 document: the application, the crates its binary was built from (with the
//! graph between them), the Debian packages with the files the image takes from each, and the
//! files no package owns.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::debian::DebianPackage;
use crate::embedded::Package;

#[derive(Debug)]
pub struct ImageFile {
    /// The absolute path in the image.
    pub path: String,
    pub sha256: String,
    pub owner: Option<DebianPackage>,
}

/// A package URL's version: `+` (build metadata in a SemVer) must be percent-encoded.
fn purl_version(version: &str) -> String {
    version
        .replace('%', "%25")
        .replace('+', "%2B")
        .replace(':', "%3A")
}

fn crate_reference(package: &Package) -> String {
    if package.source == "crates.io" {
        format!(
            "pkg:cargo/{}@{}",
            package.name,
            purl_version(&package.version)
        )
    } else {
        format!(
            "crate:{}@{}({})",
            package.name, package.version, package.source
        )
    }
}

fn debian_reference(package: &DebianPackage, distribution: &str) -> String {
    format!(
        "pkg:deb/debian/{}@{}?arch={}&distro={distribution}",
        package.name,
        purl_version(&package.version),
        package.architecture
    )
}

fn file_component(file: &ImageFile) -> Value {
    json!({
        "type": "file",
        "bom-ref": format!("file:{}", file.path),
        "name": file.path,
        "hashes": [{"alg": "SHA-256", "content": file.sha256}],
    })
}

/// The SBOM of an image whose application binary embeds `crates`, holding `files`.
pub fn document(
    crates: &[Package],
    files: &[ImageFile],
    distribution: &str,
) -> anyhow::Result<Value> {
    let root = crates
        .iter()
        .find(|package| package.root)
        .ok_or_else(|| anyhow::anyhow!("the crate list names no root package"))?;
    let root_reference = crate_reference(root);

    // A crate listed twice (same name, version and source) is one component: bom-refs are unique.
    let mut seen = std::collections::HashSet::new();
    let mut components: Vec<Value> = crates
        .iter()
        .filter(|package| !package.root && seen.insert(crate_reference(package)))
        .map(|package| {
            let mut component = json!({
                "type": "library",
                "bom-ref": crate_reference(package),
                "name": package.name,
                "version": package.version,
                // Build scripts and proc macros run at build time: not in the binary's code.
                "scope": if package.kind == "build" { "excluded" } else { "required" },
            });
            if package.source == "crates.io" {
                component["purl"] = json!(crate_reference(package));
            }
            component
        })
        .collect();

    let mut by_package: BTreeMap<&DebianPackage, Vec<&ImageFile>> = BTreeMap::new();
    for file in files {
        match &file.owner {
            Some(package) => by_package.entry(package).or_default().push(file),
            None => components.push(file_component(file)),
        }
    }
    let mut debian_references = Vec::new();
    for (package, owned) in &by_package {
        let reference = debian_reference(package, distribution);
        debian_references.push(reference.clone());
        components.push(json!({
            "type": "library",
            "bom-ref": reference,
            "name": package.name,
            "version": package.version,
            "purl": reference,
            // Only these files of the package are in the image, not the whole package.
            "components": owned.iter().map(|file| file_component(file)).collect::<Vec<_>>(),
        }));
    }

    let mut listed = std::collections::HashSet::new();
    let mut dependencies: Vec<Value> = crates
        .iter()
        .filter(|package| listed.insert(crate_reference(package)))
        .map(|package| {
            let mut depends_on: Vec<String> = package
                .dependencies
                .iter()
                .map(|&index| crate_reference(&crates[index]))
                .collect();
            if package.root {
                depends_on.extend(debian_references.iter().cloned());
            }
            let mut once = std::collections::HashSet::new();
            depends_on.retain(|reference| once.insert(reference.clone()));
            json!({"ref": crate_reference(package), "dependsOn": depends_on})
        })
        .collect();
    dependencies.extend(
        debian_references
            .iter()
            .map(|reference| json!({"ref": reference, "dependsOn": []})),
    );

    Ok(json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {
            "tools": {"components": [{
                "type": "application",
                "name": env!("CARGO_PKG_NAME"),
                "version": env!("CARGO_PKG_VERSION"),
            }]},
            "component": {
                "type": "application",
                "bom-ref": root_reference,
                "name": root.name,
                "version": root.version,
            },
        },
        "components": components,
        "dependencies": dependencies,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(
        name: &str,
        source: &str,
        kind: &str,
        dependencies: Vec<usize>,
        root: bool,
    ) -> Package {
        Package {
            name: name.to_owned(),
            version: "1.0.0".to_owned(),
            source: source.to_owned(),
            kind: kind.to_owned(),
            dependencies,
            root,
        }
    }

    #[test]
    fn the_root_is_the_subject_its_crates_and_packages_the_components() {
        let crates = [
            package("app", "local", "runtime", vec![1, 2], true),
            package("serde", "crates.io", "runtime", vec![], false),
            package("cc", "crates.io", "build", vec![], false),
        ];
        let libc = DebianPackage {
            name: "libc6".to_owned(),
            version: "2.36-9+deb12u10".to_owned(),
            architecture: "amd64".to_owned(),
        };
        let files = [
            ImageFile {
                path: "/lib/libc.so.6".to_owned(),
                sha256: "ab".repeat(32),
                owner: Some(libc),
            },
            ImageFile {
                path: "/etc/nsswitch.conf".to_owned(),
                sha256: "cd".repeat(32),
                owner: None,
            },
        ];
        let bom = document(&crates, &files, "debian-12.11").unwrap();
        assert_eq!(bom["metadata"]["component"]["name"], "app");
        let components = bom["components"].as_array().unwrap();
        let named = |name: &str| components.iter().find(|c| c["name"] == name).unwrap();
        assert_eq!(named("serde")["purl"], "pkg:cargo/serde@1.0.0");
        assert_eq!(named("cc")["scope"], "excluded");
        assert_eq!(named("/etc/nsswitch.conf")["type"], "file");
        let libc = named("libc6");
        assert_eq!(
            libc["purl"],
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u10?arch=amd64&distro=debian-12.11"
        );
        assert_eq!(libc["components"][0]["name"], "/lib/libc.so.6");
        let root = &bom["dependencies"][0];
        assert_eq!(root["ref"], "crate:app@1.0.0(local)");
        assert_eq!(root["dependsOn"].as_array().unwrap().len(), 3, "{root}");
    }

    #[test]
    fn a_crate_listed_twice_is_one_component_and_build_metadata_is_encoded() {
        let mut metadata = package("git2", "crates.io", "runtime", vec![], false);
        metadata.version = "0.20.0+1.9.0".to_owned();
        let crates = [
            package("app", "local", "runtime", vec![1, 2], true),
            package("shared", "git", "runtime", vec![], false),
            package("shared", "git", "runtime", vec![], false),
            metadata,
        ];
        let bom = document(&crates, &[], "debian-12").unwrap();
        let references: Vec<&str> = bom["components"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["bom-ref"].as_str().unwrap())
            .collect();
        assert_eq!(
            references,
            ["crate:shared@1.0.0(git)", "pkg:cargo/git2@0.20.0%2B1.9.0"]
        );
        assert_eq!(bom["dependencies"].as_array().unwrap().len(), 3);
        assert_eq!(
            bom["dependencies"][0]["dependsOn"],
            json!(["crate:shared@1.0.0(git)"])
        );
    }

    #[test]
    fn a_list_without_a_root_is_refused() {
        let crates = [package("serde", "crates.io", "runtime", vec![], false)];
        assert!(document(&crates, &[], "debian-12").is_err());
    }
}

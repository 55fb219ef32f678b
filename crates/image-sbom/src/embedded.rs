//! The crate list cargo-auditable embeds in a binary: the zlib-compressed JSON in the ELF section
//! `.dep-v0` (packages with name, version, source, kind and the indices of their dependencies).

use std::io::Read;

use anyhow::{Context, bail};
use serde::Deserialize;

const SECTION: &str = ".dep-v0";
/// The list is small (a few KiB); a bound keeps a hostile file from inflating without end.
const MAX_LIST_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, Deserialize)]
pub struct Package {
    pub name: String,
    pub version: String,
    /// "crates.io", "local", "git", "registry" or "other".
    pub source: String,
    /// "runtime" or "build" (build scripts and proc macros: not in the binary's code).
    #[serde(default = "runtime")]
    pub kind: String,
    #[serde(default)]
    pub dependencies: Vec<usize>,
    #[serde(default)]
    pub root: bool,
}

fn runtime() -> String {
    "runtime".to_owned()
}

#[derive(Debug, Deserialize)]
struct List {
    packages: Vec<Package>,
}

/// The packages recorded in `binary` (an ELF file's bytes).
pub fn packages(binary: &[u8]) -> anyhow::Result<Vec<Package>> {
    let compressed = section(binary, SECTION)?.with_context(|| {
        format!("no {SECTION} section: build the binary with `cargo auditable build`")
    })?;
    let mut json = Vec::new();
    flate2::read::ZlibDecoder::new(compressed)
        .take(MAX_LIST_BYTES)
        .read_to_end(&mut json)
        .context("the crate list is not zlib data")?;
    let list: List =
        serde_json::from_slice(&json).context("the crate list is not cargo-auditable's JSON")?;
    for package in &list.packages {
        if let Some(index) = package
            .dependencies
            .iter()
            .find(|&&index| index >= list.packages.len())
        {
            bail!(
                "{} names dependency {index}, past the list's end",
                package.name
            );
        }
    }
    Ok(list.packages)
}

/// The contents of the named section of a 64-bit little-endian ELF file.
fn section<'a>(file: &'a [u8], wanted: &str) -> anyhow::Result<Option<&'a [u8]>> {
    if file.get(..6) != Some(b"\x7fELF\x02\x01") {
        bail!("not a 64-bit little-endian ELF file");
    }
    let headers_at = read_u64(file, 0x28)?;
    let header_size = u64::from(read_u16(file, 0x3A)?);
    let count = u64::from(read_u16(file, 0x3C)?);
    let names_index = u64::from(read_u16(file, 0x3E)?);
    // (name's offset in the name table, offset in the file, size): sections that take no room in
    // the file (.bss) have a size but no bytes, so bytes are taken only of the sections read.
    let header = |index: u64| -> anyhow::Result<(u32, u64, u64)> {
        let at = index
            .checked_mul(header_size)
            .and_then(|offset| offset.checked_add(headers_at))
            .context("the section headers lie outside the file")?;
        Ok((
            read_u32(file, at)?,
            read_u64(file, at.saturating_add(0x18))?,
            read_u64(file, at.saturating_add(0x20))?,
        ))
    };
    let bytes = |offset: u64, size: u64| -> anyhow::Result<&'a [u8]> {
        usize::try_from(offset)
            .ok()
            .zip(usize::try_from(offset.saturating_add(size)).ok())
            .and_then(|(start, end)| file.get(start..end))
            .context("a section lies outside the file")
    };
    let (_, names_at, names_size) = header(names_index)?;
    let names = bytes(names_at, names_size)?;
    for index in 0..count {
        let (name_at, offset, size) = header(index)?;
        let name = names
            .get(name_at as usize..)
            .and_then(|rest| rest.split(|&byte| byte == 0).next())
            .context("a section name lies outside the name table")?;
        if name == wanted.as_bytes() {
            return bytes(offset, size).map(Some);
        }
    }
    Ok(None)
}

fn read<const N: usize>(file: &[u8], at: u64) -> anyhow::Result<[u8; N]> {
    usize::try_from(at)
        .ok()
        .and_then(|at| file.get(at..at.checked_add(N)?))
        .and_then(|bytes| bytes.try_into().ok())
        .context("the ELF headers lie outside the file")
}

fn read_u16(file: &[u8], at: u64) -> anyhow::Result<u16> {
    read(file, at).map(u16::from_le_bytes)
}

fn read_u32(file: &[u8], at: u64) -> anyhow::Result<u32> {
    read(file, at).map(u32::from_le_bytes)
}

fn read_u64(file: &[u8], at: u64) -> anyhow::Result<u64> {
    read(file, at).map(u64::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// A minimal ELF file: the header, a name table and one section holding `contents`.
    fn elf_with(section_name: &str, contents: &[u8]) -> Vec<u8> {
        let names = format!("\0.shstrtab\0{section_name}\0").into_bytes();
        let names_at = 64u64;
        let contents_at = names_at + names.len() as u64;
        let headers_at = contents_at + contents.len() as u64;
        let mut file = vec![0u8; 64];
        file[..6].copy_from_slice(b"\x7fELF\x02\x01");
        file[0x28..0x30].copy_from_slice(&headers_at.to_le_bytes());
        file[0x3A..0x3C].copy_from_slice(&64u16.to_le_bytes());
        file[0x3C..0x3E].copy_from_slice(&3u16.to_le_bytes());
        file[0x3E..0x40].copy_from_slice(&1u16.to_le_bytes());
        file.extend_from_slice(&names);
        file.extend_from_slice(contents);
        let section = |name: u32, offset: u64, size: u64| {
            let mut header = vec![0u8; 64];
            header[..4].copy_from_slice(&name.to_le_bytes());
            header[0x18..0x20].copy_from_slice(&offset.to_le_bytes());
            header[0x20..0x28].copy_from_slice(&size.to_le_bytes());
            header
        };
        // A section that takes no room in the file (.bss): its offset and size point past the end.
        file.extend(section(0, 1 << 40, 1 << 20));
        file.extend(section(1, names_at, names.len() as u64));
        file.extend(section(11, contents_at, contents.len() as u64));
        file
    }

    fn zlib(json: &str) -> Vec<u8> {
        let mut encoder =
            flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(json.as_bytes()).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn reads_the_packages_and_their_dependencies() {
        let json = r#"{"packages":[
            {"name":"app","version":"0.2.0","source":"local","dependencies":[1],"root":true},
            {"name":"libc","version":"0.2.170","source":"crates.io"},
            {"name":"cc","version":"1.2.0","source":"crates.io","kind":"build"}]}"#;
        let packages = packages(&elf_with(".dep-v0", &zlib(json))).unwrap();
        assert_eq!(packages.len(), 3);
        assert!(packages[0].root);
        assert_eq!(packages[0].dependencies, [1]);
        assert_eq!(
            (packages[1].kind.as_str(), packages[2].kind.as_str()),
            ("runtime", "build")
        );
    }

    #[test]
    fn a_binary_without_the_list_says_how_to_build_it() {
        let error = packages(&elf_with(".text", b"code")).unwrap_err();
        assert!(
            error.to_string().contains("cargo auditable build"),
            "{error}"
        );
    }

    #[test]
    fn a_dependency_past_the_list_is_refused() {
        let json = r#"{"packages":[{"name":"app","version":"1.0.0","source":"local","dependencies":[5]}]}"#;
        assert!(packages(&elf_with(".dep-v0", &zlib(json))).is_err());
    }

    #[test]
    fn a_file_that_lies_is_an_error_not_a_panic() {
        let good = elf_with(".dep-v0", &zlib(r#"{"packages":[]}"#));
        for cut in [0, 5, 40, 64, good.len() - 40] {
            assert!(packages(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut wild = good.clone();
        wild[0x28..0x30].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(packages(&wild).is_err());
    }
}

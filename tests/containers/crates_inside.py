"""The crate list that cargo-auditable embeds in a binary: what a scanner reads.

    python -m tests.containers.crates_inside BINARY...

prints, for each binary, how many crates it was built from and the workspace's own among them,
and fails if a binary carries no list (built with plain `cargo build`). The list is the zlib-
compressed JSON in the ELF section `.dep-v0` (the format cargo-auditable documents: packages with
name, version, source, kind and the indices of their dependencies).
"""

import json
import struct
import sys
import zlib
from pathlib import Path

SECTION = ".dep-v0"


def section(binary: bytes, wanted: str) -> bytes | None:
    """The contents of the named section of a 64-bit little-endian ELF file, or None."""
    if binary[:4] != b"\x7fELF" or binary[4] != 2 or binary[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF file")
    (section_offset,) = struct.unpack_from("<Q", binary, 0x28)
    entry_size, count, names_index = struct.unpack_from("<HHH", binary, 0x3A)

    def header(index: int) -> tuple[int, int, int]:
        name, _type, _flags, _address, offset, size = struct.unpack_from(
            "<IIQQQQ", binary, section_offset + index * entry_size
        )
        return name, offset, size

    _, names_offset, names_size = header(names_index)
    names = binary[names_offset : names_offset + names_size]
    for index in range(count):
        name, offset, size = header(index)
        if names[name : names.index(b"\0", name)].decode() == wanted:
            return binary[offset : offset + size]
    return None


def embedded_crates(path: Path) -> list[dict]:
    """The packages cargo-auditable recorded in the binary at `path`."""
    data = section(path.read_bytes(), SECTION)
    if data is None:
        raise LookupError(f"{path} has no {SECTION} section: build it with `cargo auditable build`")
    return json.loads(zlib.decompress(data))["packages"]


def main() -> None:
    for argument in sys.argv[1:]:
        path = Path(argument)
        try:
            packages = embedded_crates(path)
        except (LookupError, ValueError) as error:
            sys.exit(f"FAILED: {error}")
        built = [p for p in packages if p.get("kind", "runtime") == "runtime"]
        own = sorted(f"{p['name']} {p['version']}" for p in built if p.get("source") == "local")
        registry = [p for p in built if p.get("source") == "crates.io"]
        print(
            f"  {path.name}: {len(built)} crates embedded ({len(registry)} from crates.io; "
            f"its own: {', '.join(own)})"
        )


if __name__ == "__main__":
    main()

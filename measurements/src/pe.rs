//! PE/COFF parsing: DOS stub, COFF file header, PE32/PE32+ optional header, data directories and
//! the section table of an image held in memory, plus the systemd-stub `.sdmagic` version string.
//!
//! Bytes in, structures out: every offset and size is checked against the data before it is read,
//! errors name the offset and what was expected there, and no input makes it panic. Besides the
//! header values the parser records the absolute file offsets of the fields that writers and the
//! Authenticode hash need ([`FieldOffsets`]).

use thiserror::Error;

/// Size of one section header in the section table.
pub const SECTION_HEADER_SIZE: usize = 40;
/// Size of one COFF symbol table record.
pub const COFF_SYMBOL_SIZE: usize = 18;
/// Optional-header magic of a PE32 image.
pub const PE32_MAGIC: u16 = 0x10b;
/// Optional-header magic of a PE32+ image.
pub const PE32_PLUS_MAGIC: u16 = 0x20b;
/// Index of the certificate table (`IMAGE_DIRECTORY_ENTRY_SECURITY`) among the data directories.
pub const DIRECTORY_ENTRY_SECURITY: usize = 4;
/// `IMAGE_DLLCHARACTERISTICS_NX_COMPAT`.
pub const DLL_CHARACTERISTICS_NX_COMPAT: u16 = 0x0100;
/// `IMAGE_SCN_CNT_CODE`.
pub const SCN_CNT_CODE: u32 = 0x0000_0020;
/// `IMAGE_SCN_CNT_INITIALIZED_DATA`.
pub const SCN_CNT_INITIALIZED_DATA: u32 = 0x0000_0040;
/// `IMAGE_SCN_MEM_READ`.
pub const SCN_MEM_READ: u32 = 0x4000_0000;

/// At most this many data directories exist (PE/COFF specification).
const MAX_DATA_DIRECTORIES: u32 = 16;
/// Offset of `e_lfanew` in the DOS header.
const E_LFANEW_OFFSET: usize = 0x3c;
/// Size of the COFF file header.
const COFF_HEADER_SIZE: usize = 20;

/// Why a PE image could not be parsed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PeError {
    /// A structure does not fit in the data.
    #[error("{what} at offset {offset:#x} ({len} bytes) runs past the end of the data ({data_len:#x} bytes)")]
    Truncated {
        /// The structure or field that was being read.
        what: &'static str,
        /// Where it starts.
        offset: u64,
        /// How many bytes it needs.
        len: u64,
        /// How many bytes there are.
        data_len: u64,
    },
    /// A field holds a value the format does not allow.
    #[error("{what} at offset {offset:#x}: expected {expected}, found {found}")]
    Unexpected {
        /// The field.
        what: &'static str,
        /// Its file offset.
        offset: u64,
        /// What the format requires.
        expected: String,
        /// What the data holds.
        found: String,
    },
    /// The `.sdmagic` section does not hold a systemd-stub version string.
    #[error(
        ".sdmagic: expected \"#### LoaderInfo: systemd-stub <version> ####\", found {found:?}"
    )]
    Sdmagic {
        /// The (lossily decoded) section contents.
        found: String,
    },
}

/// Result type of this module.
pub type Result<T> = std::result::Result<T, PeError>;

/// The COFF file header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoffHeader {
    /// Target machine (0x8664 for x86-64).
    pub machine: u16,
    /// Number of entries in the section table.
    pub number_of_sections: u16,
    /// Link time stamp.
    pub time_date_stamp: u32,
    /// File offset of the COFF symbol table, 0 if none.
    pub pointer_to_symbol_table: u32,
    /// Number of records in the COFF symbol table.
    pub number_of_symbols: u32,
    /// Size of the optional header that follows.
    pub size_of_optional_header: u16,
    /// `IMAGE_FILE_*` flags.
    pub characteristics: u16,
}

/// One data-directory entry (RVA and size; for the certificate table the "RVA" is a file offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DataDirectory {
    /// Relative virtual address (file offset for the certificate table).
    pub virtual_address: u32,
    /// Size in bytes.
    pub size: u32,
}

/// The fields of the optional header (PE32 or PE32+) that nodeimg uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionalHeader {
    /// [`PE32_MAGIC`] or [`PE32_PLUS_MAGIC`].
    pub magic: u16,
    /// Sum of the sizes of all code sections.
    pub size_of_code: u32,
    /// Sum of the sizes of all initialized-data sections.
    pub size_of_initialized_data: u32,
    /// Sum of the sizes of all uninitialized-data sections.
    pub size_of_uninitialized_data: u32,
    /// Entry point RVA.
    pub address_of_entry_point: u32,
    /// Preferred load address.
    pub image_base: u64,
    /// Alignment of sections in memory (a power of two).
    pub section_alignment: u32,
    /// Alignment of section data in the file (a power of two).
    pub file_alignment: u32,
    /// Image major version (Linux EFI stubs use it for the boot protocol version).
    pub major_image_version: u16,
    /// Image minor version.
    pub minor_image_version: u16,
    /// Size of the image in memory.
    pub size_of_image: u32,
    /// Size of all headers, rounded up to `file_alignment` by linkers.
    pub size_of_headers: u32,
    /// Image checksum (0 for most EFI images).
    pub check_sum: u32,
    /// Subsystem (10 = EFI application).
    pub subsystem: u16,
    /// `IMAGE_DLLCHARACTERISTICS_*` flags.
    pub dll_characteristics: u16,
    /// The data directories (`NumberOfRvaAndSizes` entries, at most 16).
    pub data_directories: Vec<DataDirectory>,
}

/// One entry of the section table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Raw 8-byte name, NUL-padded.
    pub raw_name: [u8; 8],
    /// Size in memory.
    pub virtual_size: u32,
    /// RVA in memory.
    pub virtual_address: u32,
    /// Size of the data in the file.
    pub size_of_raw_data: u32,
    /// File offset of the data.
    pub pointer_to_raw_data: u32,
    /// `IMAGE_SCN_*` flags.
    pub characteristics: u32,
    /// File offset of this 40-byte section header.
    pub header_offset: usize,
}

impl Section {
    /// The name without its NUL padding.
    pub fn name(&self) -> &[u8] {
        let end = self.raw_name.iter().position(|&b| b == 0).unwrap_or(8);
        &self.raw_name[..end]
    }

    /// The name as text (lossy), for messages and listings.
    pub fn name_lossy(&self) -> String {
        String::from_utf8_lossy(self.name()).into_owned()
    }

    /// Bytes of data the section holds: `min(VirtualSize, SizeOfRawData)` (what ukify reads).
    pub fn data_len(&self) -> u32 {
        self.virtual_size.min(self.size_of_raw_data)
    }
}

/// Absolute file offsets of header fields that writers and hashers need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldOffsets {
    /// The COFF file header (just after the `PE\0\0` signature).
    pub coff_header: usize,
    /// `FileHeader.PointerToSymbolTable` (u32); `NumberOfSymbols` follows at +4.
    pub pointer_to_symbol_table: usize,
    /// `FileHeader.NumberOfSections` (u16).
    pub number_of_sections: usize,
    /// Start of the optional header.
    pub optional_header: usize,
    /// `SizeOfInitializedData` (u32).
    pub size_of_initialized_data: usize,
    /// `SizeOfImage` (u32).
    pub size_of_image: usize,
    /// `SizeOfHeaders` (u32).
    pub size_of_headers: usize,
    /// `CheckSum` (u32).
    pub check_sum: usize,
    /// `DllCharacteristics` (u16).
    pub dll_characteristics: usize,
    /// First data-directory entry (8 bytes each).
    pub data_directories: usize,
    /// First section header.
    pub section_table: usize,
}

impl FieldOffsets {
    /// Offset of data directory `index` (which may lie beyond `NumberOfRvaAndSizes`).
    pub fn data_directory(&self, index: usize) -> usize {
        self.data_directories + 8 * index
    }
}

/// A parsed PE image borrowing its bytes.
#[derive(Debug, Clone)]
pub struct Pe<'a> {
    data: &'a [u8],
    /// `e_lfanew`: file offset of the `PE\0\0` signature.
    pub e_lfanew: u32,
    /// The COFF file header.
    pub coff: CoffHeader,
    /// The optional header.
    pub optional: OptionalHeader,
    /// The section table, in table order.
    pub sections: Vec<Section>,
    /// Where the fields sit in the file.
    pub offsets: FieldOffsets,
}

/// The systemd-stub version found in `.sdmagic`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StubVersion {
    /// The full version string, e.g. `252.39-1~deb12u2`.
    pub version: String,
    /// The leading number, e.g. 252.
    pub major: u32,
}

/// Bounds-checked little-endian reads from a byte slice.
struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn bytes(&self, offset: usize, len: usize, what: &'static str) -> Result<&'a [u8]> {
        offset
            .checked_add(len)
            .and_then(|end| self.data.get(offset..end))
            .ok_or(PeError::Truncated {
                what,
                offset: offset as u64,
                len: len as u64,
                data_len: self.data.len() as u64,
            })
    }

    fn array<const N: usize>(&self, offset: usize, what: &'static str) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(offset, N, what)?);
        Ok(out)
    }

    fn u16(&self, offset: usize, what: &'static str) -> Result<u16> {
        self.array(offset, what).map(u16::from_le_bytes)
    }

    fn u32(&self, offset: usize, what: &'static str) -> Result<u32> {
        self.array(offset, what).map(u32::from_le_bytes)
    }

    fn u64(&self, offset: usize, what: &'static str) -> Result<u64> {
        self.array(offset, what).map(u64::from_le_bytes)
    }
}

fn unexpected(what: &'static str, offset: usize, expected: &str, found: String) -> PeError {
    PeError::Unexpected {
        what,
        offset: offset as u64,
        expected: expected.to_string(),
        found,
    }
}

impl<'a> Pe<'a> {
    /// Parses the headers and section table of the PE image `data`.
    pub fn parse(data: &'a [u8]) -> Result<Self> {
        let r = Reader { data };
        let mz = r.array::<2>(0, "DOS header magic")?;
        if &mz != b"MZ" {
            return Err(unexpected(
                "DOS header magic",
                0,
                "\"MZ\"",
                format!("{mz:02x?}"),
            ));
        }
        let e_lfanew = r.u32(E_LFANEW_OFFSET, "DOS header e_lfanew")?;
        let sig_off = e_lfanew as usize;
        let sig = r.array::<4>(sig_off, "PE signature")?;
        if &sig != b"PE\0\0" {
            return Err(unexpected(
                "PE signature",
                sig_off,
                "\"PE\\0\\0\"",
                format!("{sig:02x?}"),
            ));
        }
        let coff_off = sig_off + 4;
        let coff = parse_coff(&r, coff_off)?;
        let opt_off = coff_off + COFF_HEADER_SIZE;
        let (optional, offsets) = parse_optional(&r, &coff, opt_off)?;
        let sections = parse_sections(&r, offsets.section_table, coff.number_of_sections)?;
        Ok(Pe {
            data,
            e_lfanew,
            coff,
            optional,
            sections,
            offsets,
        })
    }

    /// The whole image.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The first section whose name equals `name` exactly.
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name() == name.as_bytes())
    }

    /// The `SizeOfRawData` bytes of `section` as stored in the file.
    pub fn raw_data(&self, section: &Section) -> Result<&'a [u8]> {
        self.section_bytes(section, section.size_of_raw_data)
    }

    /// The contents of `section`: `min(VirtualSize, SizeOfRawData)` bytes from its file data.
    pub fn contents(&self, section: &Section) -> Result<&'a [u8]> {
        self.section_bytes(section, section.data_len())
    }

    /// The contents (see [`Pe::contents`]) of the first section named `name`, if there is one.
    pub fn section_data(&self, name: &str) -> Result<Option<&'a [u8]>> {
        self.section(name).map(|s| self.contents(s)).transpose()
    }

    fn section_bytes(&self, section: &Section, len: u32) -> Result<&'a [u8]> {
        let r = Reader { data: self.data };
        r.bytes(
            section.pointer_to_raw_data as usize,
            len as usize,
            "section data",
        )
    }

    /// The certificate table directory entry, if the image has a non-empty one.
    pub fn certificate_table(&self) -> Option<DataDirectory> {
        self.optional
            .data_directories
            .get(DIRECTORY_ENTRY_SECURITY)
            .filter(|d| d.virtual_address != 0)
            .copied()
    }

    /// The systemd-stub version from the `.sdmagic` section; `None` when there is no such section.
    pub fn stub_version(&self) -> Result<Option<StubVersion>> {
        self.section_data(".sdmagic")?
            .map(parse_sdmagic)
            .transpose()
    }
}

fn parse_coff(r: &Reader<'_>, off: usize) -> Result<CoffHeader> {
    r.bytes(off, COFF_HEADER_SIZE, "COFF file header")?;
    Ok(CoffHeader {
        machine: r.u16(off, "Machine")?,
        number_of_sections: r.u16(off + 2, "NumberOfSections")?,
        time_date_stamp: r.u32(off + 4, "TimeDateStamp")?,
        pointer_to_symbol_table: r.u32(off + 8, "PointerToSymbolTable")?,
        number_of_symbols: r.u32(off + 12, "NumberOfSymbols")?,
        size_of_optional_header: r.u16(off + 16, "SizeOfOptionalHeader")?,
        characteristics: r.u16(off + 18, "Characteristics")?,
    })
}

/// Parses the optional header at `off` and computes the field offsets.
fn parse_optional(
    r: &Reader<'_>,
    coff: &CoffHeader,
    off: usize,
) -> Result<(OptionalHeader, FieldOffsets)> {
    let magic = r.u16(off, "optional header magic")?;
    // PE32 has BaseOfData and 32-bit ImageBase/stack/heap fields; PE32+ widens them.
    let (dirs_rel, wide) = match magic {
        PE32_MAGIC => (96, false),
        PE32_PLUS_MAGIC => (112, true),
        m => {
            let expected = "0x10b (PE32) or 0x20b (PE32+)";
            return Err(unexpected(
                "optional header magic",
                off,
                expected,
                format!("{m:#x}"),
            ));
        }
    };
    let opt_size = usize::from(coff.size_of_optional_header);
    if opt_size < dirs_rel {
        let expected = format!("at least {dirs_rel}");
        let found = opt_size.to_string();
        return Err(unexpected(
            "SizeOfOptionalHeader",
            off - 4,
            &expected,
            found,
        ));
    }
    r.bytes(off, opt_size, "optional header")?;
    let image_base = if wide {
        r.u64(off + 24, "ImageBase")?
    } else {
        u64::from(r.u32(off + 28, "ImageBase")?)
    };
    let optional = OptionalHeader {
        magic,
        size_of_code: r.u32(off + 4, "SizeOfCode")?,
        size_of_initialized_data: r.u32(off + 8, "SizeOfInitializedData")?,
        size_of_uninitialized_data: r.u32(off + 12, "SizeOfUninitializedData")?,
        address_of_entry_point: r.u32(off + 16, "AddressOfEntryPoint")?,
        image_base,
        section_alignment: power_of_two(r, off + 32, "SectionAlignment")?,
        file_alignment: power_of_two(r, off + 36, "FileAlignment")?,
        major_image_version: r.u16(off + 44, "MajorImageVersion")?,
        minor_image_version: r.u16(off + 46, "MinorImageVersion")?,
        size_of_image: r.u32(off + 56, "SizeOfImage")?,
        size_of_headers: r.u32(off + 60, "SizeOfHeaders")?,
        check_sum: r.u32(off + 64, "CheckSum")?,
        subsystem: r.u16(off + 68, "Subsystem")?,
        dll_characteristics: r.u16(off + 70, "DllCharacteristics")?,
        data_directories: parse_data_directories(r, off + dirs_rel, off + opt_size)?,
    };
    let offsets = FieldOffsets {
        coff_header: off - COFF_HEADER_SIZE,
        pointer_to_symbol_table: off - COFF_HEADER_SIZE + 8,
        number_of_sections: off - COFF_HEADER_SIZE + 2,
        optional_header: off,
        size_of_initialized_data: off + 8,
        size_of_image: off + 56,
        size_of_headers: off + 60,
        check_sum: off + 64,
        dll_characteristics: off + 70,
        data_directories: off + dirs_rel,
        section_table: off + opt_size,
    };
    Ok((optional, offsets))
}

/// Reads `NumberOfRvaAndSizes` (the u32 just before `start`) data directories, which must end
/// by `end` (the end of the optional header).
fn parse_data_directories(r: &Reader<'_>, start: usize, end: usize) -> Result<Vec<DataDirectory>> {
    let count = r.u32(start - 4, "NumberOfRvaAndSizes")?;
    let max_fit = ((end - start) / 8) as u32;
    if count > MAX_DATA_DIRECTORIES || count > max_fit {
        let expected = format!("at most {}", max_fit.min(MAX_DATA_DIRECTORIES));
        return Err(unexpected(
            "NumberOfRvaAndSizes",
            start - 4,
            &expected,
            count.to_string(),
        ));
    }
    (0..count as usize)
        .map(|i| {
            let at = start + 8 * i;
            Ok(DataDirectory {
                virtual_address: r.u32(at, "data directory")?,
                size: r.u32(at + 4, "data directory")?,
            })
        })
        .collect()
}

fn power_of_two(r: &Reader<'_>, off: usize, what: &'static str) -> Result<u32> {
    let v = r.u32(off, what)?;
    if !v.is_power_of_two() {
        return Err(unexpected(
            what,
            off,
            "a non-zero power of two",
            format!("{v:#x}"),
        ));
    }
    Ok(v)
}

fn parse_sections(r: &Reader<'_>, table: usize, count: u16) -> Result<Vec<Section>> {
    r.bytes(
        table,
        SECTION_HEADER_SIZE * usize::from(count),
        "section table",
    )?;
    (0..usize::from(count))
        .map(|i| {
            let at = table + SECTION_HEADER_SIZE * i;
            Ok(Section {
                raw_name: r.array(at, "section name")?,
                virtual_size: r.u32(at + 8, "section VirtualSize")?,
                virtual_address: r.u32(at + 12, "section VirtualAddress")?,
                size_of_raw_data: r.u32(at + 16, "section SizeOfRawData")?,
                pointer_to_raw_data: r.u32(at + 20, "section PointerToRawData")?,
                characteristics: r.u32(at + 36, "section Characteristics")?,
                header_offset: at,
            })
        })
        .collect()
}

/// Parses the contents of a `.sdmagic` section: `#### LoaderInfo: systemd-stub <version> ####`,
/// possibly followed by NUL bytes.
pub fn parse_sdmagic(bytes: &[u8]) -> Result<StubVersion> {
    const PREFIX: &str = "#### LoaderInfo: systemd-stub ";
    const SUFFIX: &str = " ####";
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let text = String::from_utf8_lossy(&bytes[..end]);
    let bad = || PeError::Sdmagic {
        found: text.to_string(),
    };
    let version = text
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.strip_suffix(SUFFIX))
        .filter(|v| !v.is_empty() && !v.contains(char::is_whitespace))
        .ok_or_else(bad)?;
    let digits: String = version.chars().take_while(char::is_ascii_digit).collect();
    let major = digits.parse::<u32>().map_err(|_| bad())?;
    Ok(StubVersion {
        version: version.to_string(),
        major,
    })
}

#[cfg(any(test, feature = "test-util"))]
pub mod synth;

#[cfg(test)]
mod tests;

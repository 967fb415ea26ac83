//! A minimal PE32+ writer for tests and fixtures (feature `test-util`): builds small, valid EFI
//! images with chosen sections, alignments and header room, so parsers and the UKI writer can be
//! tested without real binaries.

/// Description of a synthetic PE32+ image; [`SynthPe::build`] lays it out.
#[derive(Debug, Clone)]
pub struct SynthPe {
    /// File offset of the `PE\0\0` signature.
    pub e_lfanew: u32,
    /// `FileAlignment`.
    pub file_alignment: u32,
    /// `SectionAlignment`.
    pub section_alignment: u32,
    /// `SizeOfHeaders` (rounded up to `file_alignment` by the writer only if smaller than needed).
    pub size_of_headers: u32,
    /// `DllCharacteristics`.
    pub dll_characteristics: u16,
    /// `MajorImageVersion`.
    pub major_image_version: u16,
    /// Sections in table and file order: name, contents, characteristics.
    pub sections: Vec<(String, Vec<u8>, u32)>,
    /// A COFF symbol table appended at the end: number of symbols and the string table bytes
    /// that follow them (starting with its own u32 length, as in real files).
    pub symbols: Option<(u32, Vec<u8>)>,
    /// Certificate table directory entry (file offset, size); nothing is appended for it.
    pub certificate_table: Option<(u32, u32)>,
}

impl Default for SynthPe {
    fn default() -> Self {
        SynthPe {
            e_lfanew: 0x40,
            file_alignment: 0x200,
            section_alignment: 0x1000,
            size_of_headers: 0x400,
            dll_characteristics: 0x160,
            major_image_version: 0,
            sections: Vec::new(),
            symbols: None,
            certificate_table: None,
        }
    }
}

fn round_up(x: u32, a: u32) -> u32 {
    x.div_ceil(a) * a
}

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    buf[at..at + bytes.len()].copy_from_slice(bytes);
}

impl SynthPe {
    /// Adds a section.
    pub fn section(mut self, name: &str, data: &[u8], characteristics: u32) -> Self {
        self.sections
            .push((name.to_string(), data.to_vec(), characteristics));
        self
    }

    /// Lays out the image: headers, then each section's data at the next file-aligned offset.
    pub fn build(&self) -> Vec<u8> {
        let opt_size = 112 + 16 * 8;
        let table = self.e_lfanew as usize + 4 + 20 + opt_size;
        let table_end = (table + 40 * self.sections.len()) as u32;
        let headers = self
            .size_of_headers
            .max(round_up(table_end, self.file_alignment));
        let mut out = vec![0u8; headers as usize];
        put(&mut out, 0, b"MZ");
        put(&mut out, 0x3c, &self.e_lfanew.to_le_bytes());
        let pe = self.e_lfanew as usize;
        put(&mut out, pe, b"PE\0\0");
        self.write_coff(&mut out, pe + 4, opt_size as u16);
        let mut va = round_up(headers, self.section_alignment);
        let mut init_data = 0u32;
        for (i, (name, data, ch)) in self.sections.iter().enumerate() {
            let ptr = round_up(out.len() as u32, self.file_alignment);
            let raw = round_up(data.len() as u32, self.file_alignment);
            out.resize(ptr as usize, 0);
            out.extend_from_slice(data);
            out.resize((ptr + raw) as usize, 0);
            let at = table + 40 * i;
            let mut n = [0u8; 8];
            n[..name.len().min(8)].copy_from_slice(&name.as_bytes()[..name.len().min(8)]);
            put(&mut out, at, &n);
            for (k, v) in [data.len() as u32, va, raw, ptr].iter().enumerate() {
                put(&mut out, at + 8 + 4 * k, &v.to_le_bytes());
            }
            put(&mut out, at + 36, &ch.to_le_bytes());
            va = round_up(va + data.len() as u32, self.section_alignment);
            init_data += data.len() as u32;
        }
        self.write_optional(&mut out, pe + 24, headers, va, init_data);
        if let Some((count, strings)) = &self.symbols {
            let at = out.len() as u32;
            put(&mut out, pe + 4 + 8, &at.to_le_bytes());
            out.extend((0..18 * *count).map(|i| (i % 251) as u8));
            out.extend_from_slice(strings);
        }
        out
    }

    fn write_coff(&self, out: &mut [u8], at: usize, opt_size: u16) {
        put(out, at, &0x8664u16.to_le_bytes());
        put(out, at + 2, &(self.sections.len() as u16).to_le_bytes());
        put(out, at + 4, &0x1234_5678u32.to_le_bytes());
        let nsyms = self.symbols.as_ref().map_or(0, |s| s.0);
        put(out, at + 12, &nsyms.to_le_bytes());
        put(out, at + 16, &opt_size.to_le_bytes());
        put(out, at + 18, &0x0206u16.to_le_bytes());
    }

    fn write_optional(&self, out: &mut [u8], at: usize, headers: u32, image_end: u32, init: u32) {
        put(out, at, &0x20bu16.to_le_bytes());
        put(out, at + 8, &init.to_le_bytes());
        put(out, at + 16, &0x1000u32.to_le_bytes());
        put(out, at + 32, &self.section_alignment.to_le_bytes());
        put(out, at + 36, &self.file_alignment.to_le_bytes());
        put(out, at + 44, &self.major_image_version.to_le_bytes());
        put(out, at + 56, &image_end.to_le_bytes());
        put(out, at + 60, &headers.to_le_bytes());
        put(out, at + 64, &0xabcdu32.to_le_bytes());
        put(out, at + 68, &10u16.to_le_bytes());
        put(out, at + 70, &self.dll_characteristics.to_le_bytes());
        put(out, at + 108, &16u32.to_le_bytes());
        if let Some((off, size)) = self.certificate_table {
            put(out, at + 112 + 8 * 4, &off.to_le_bytes());
            put(out, at + 112 + 8 * 4 + 4, &size.to_le_bytes());
        }
    }
}

//! Appending sections to a systemd-stub PE exactly as ukify 257's `pe_add_sections` does
//! (spec §2.2): the working image is the stub's bytes plus a model of the headers that change;
//! [`Image::finish`] writes the model back.

use anyhow::{bail, ensure, Context, Result};
use measurements::pe::{
    FieldOffsets, Pe, Section, COFF_SYMBOL_SIZE, DLL_CHARACTERISTICS_NX_COMPAT, SCN_CNT_CODE,
    SCN_CNT_INITIALIZED_DATA, SCN_MEM_READ, SECTION_HEADER_SIZE,
};

/// A stub being turned into a UKI.
#[derive(Debug)]
pub struct Image {
    data: Vec<u8>,
    offsets: FieldOffsets,
    file_alignment: u32,
    section_alignment: u32,
    size_of_headers: u32,
    size_of_initialized_data: u32,
    dll_characteristics: u16,
    sections: Vec<Section>,
    /// How many entries of `sections` come from the stub.
    stub_sections: usize,
}

fn round_up(x: u64, align: u32) -> u64 {
    x.div_ceil(u64::from(align)) * u64::from(align)
}

/// `x` as a u32 header field, or an error naming the field.
fn field(x: u64, what: &str) -> Result<u32> {
    u32::try_from(x).with_context(|| format!("{what} {x:#x} does not fit in 32 bits"))
}

impl Image {
    /// Prepares `stub`: strips a trailing COFF symbol table, file-aligns every section's data,
    /// rounds `SizeOfHeaders` up to `FileAlignment`, and refuses a signed stub.
    pub fn from_stub(stub: &[u8]) -> Result<Self> {
        let pe = Pe::parse(stub).context("parsing the stub's PE headers")?;
        ensure!(!pe.sections.is_empty(), "the stub has no sections");
        if let Some(cert) = pe.certificate_table() {
            bail!(
                "the stub is signed (certificate table at file offset {:#x}); refusing, \
                 use an unsigned stub and sign the UKI instead",
                cert.virtual_address
            );
        }
        let mut img = Image {
            data: stub.to_vec(),
            offsets: pe.offsets.clone(),
            file_alignment: pe.optional.file_alignment,
            section_alignment: pe.optional.section_alignment,
            size_of_headers: pe.optional.size_of_headers,
            size_of_initialized_data: pe.optional.size_of_initialized_data,
            dll_characteristics: pe.optional.dll_characteristics,
            sections: pe.sections.clone(),
            stub_sections: pe.sections.len(),
        };
        img.strip_symbol_table(&pe);
        img.align_sections()?;
        img.size_of_headers = field(
            round_up(img.size_of_headers.into(), img.file_alignment),
            "SizeOfHeaders",
        )?;
        ensure!(
            img.data.len() >= img.size_of_headers as usize,
            "the stub ({:#x} bytes) is shorter than its SizeOfHeaders ({:#x})",
            img.data.len(),
            img.size_of_headers
        );
        Ok(img)
    }

    /// Drops a COFF symbol table (and its string table) that ends exactly at the end of the file.
    fn strip_symbol_table(&mut self, pe: &Pe<'_>) {
        let start = pe.coff.pointer_to_symbol_table as usize;
        // (A table inside the headers is left alone: truncating there would cut the headers.)
        if start == 0 || start < pe.optional.size_of_headers as usize {
            return;
        }
        let mut size = COFF_SYMBOL_SIZE * pe.coff.number_of_symbols as usize;
        let strings_at = start.saturating_add(size);
        if let Some(len) = self.data.get(strings_at..strings_at.saturating_add(4)) {
            size += u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        }
        if start.checked_add(size) == Some(self.data.len()) {
            tracing::debug!(offset = start, "stripping the stub's COFF symbol table");
            self.data.truncate(start);
            let at = self.offsets.pointer_to_symbol_table;
            self.data[at..at + 8].fill(0);
        }
    }

    /// Rounds each section's `PointerToRawData` and `SizeOfRawData` up to `FileAlignment`,
    /// inserting zeros and shifting later data (a no-op for well-formed stubs).
    fn align_sections(&mut self) -> Result<()> {
        for i in 0..self.sections.len() {
            let s = &self.sections[i];
            let (oldp, oldsz) = (s.pointer_to_raw_data as usize, s.size_of_raw_data as usize);
            ensure!(
                oldp.checked_add(oldsz).is_some_and(|end| end <= self.data.len()),
                "stub section {} (data at {oldp:#x}, {oldsz:#x} bytes) runs past the end of the file",
                s.name_lossy()
            );
            let newp = field(
                round_up(oldp as u64, self.file_alignment),
                "PointerToRawData",
            )?;
            let newsz = field(round_up(oldsz as u64, self.file_alignment), "SizeOfRawData")?;
            let (padp, padsz) = (newp as usize - oldp, newsz as usize - oldsz);
            if padp + padsz == 0 {
                continue;
            }
            tracing::debug!(
                section = s.name_lossy(),
                padp,
                padsz,
                "file-aligning stub section"
            );
            let tail = self.data.split_off(oldp);
            self.data.resize(oldp + padp, 0);
            self.data.extend_from_slice(&tail[..oldsz]);
            self.data.resize(self.data.len() + padsz, 0);
            self.data.extend_from_slice(&tail[oldsz..]);
            self.sections[i].pointer_to_raw_data = newp;
            self.sections[i].size_of_raw_data = newsz;
            for later in &mut self.sections[i + 1..] {
                later.pointer_to_raw_data = field(
                    u64::from(later.pointer_to_raw_data) + (padp + padsz) as u64,
                    "PointerToRawData",
                )?;
            }
        }
        Ok(())
    }

    /// How many more section headers fit between the section table and `SizeOfHeaders`.
    pub fn free_header_slots(&self) -> usize {
        let table_end = self.next_header_offset();
        (self.size_of_headers as usize).saturating_sub(table_end) / SECTION_HEADER_SIZE
    }

    fn next_header_offset(&self) -> usize {
        self.sections
            .last()
            .map_or(self.offsets.section_table, |s| {
                s.header_offset + SECTION_HEADER_SIZE
            })
    }

    /// Fails unless `needed` section headers fit (ukify checks each header slot, even for a
    /// section it then replaces in place).
    pub fn check_header_room(&self, needed: usize) -> Result<()> {
        let free = self.free_header_slots();
        ensure!(
            needed <= free,
            "stub header has room for {free} more sections, need {needed} \
             (SizeOfHeaders {:#x}, section table ends at {:#x})",
            self.size_of_headers,
            self.next_header_offset()
        );
        Ok(())
    }

    /// Adds section `name` with `contents`: replaces a stub section of that name in place, or
    /// appends a new header and the file-aligned data.
    pub fn add(&mut self, name: &str, contents: &[u8]) -> Result<()> {
        ensure!(
            name.len() <= 8,
            "section name {name:?} is longer than 8 bytes"
        );
        let header_offset = self.next_header_offset();
        ensure!(
            header_offset + SECTION_HEADER_SIZE <= self.size_of_headers as usize,
            "not enough header space to add section {name}"
        );
        let len = field(contents.len() as u64, "VirtualSize")?;
        let existing = self.sections[..self.stub_sections]
            .iter()
            .position(|s| s.name() == name.as_bytes());
        match existing {
            Some(i) => self.replace(i, contents, len),
            None => self.append(name, contents, len, header_offset),
        }
    }

    fn replace(&mut self, i: usize, contents: &[u8], len: u32) -> Result<()> {
        let s = &mut self.sections[i];
        ensure!(
            len <= s.size_of_raw_data,
            "the new {} ({len} bytes) does not fit the stub's section ({} bytes)",
            s.name_lossy(),
            s.size_of_raw_data
        );
        let at = s.pointer_to_raw_data as usize;
        let area = &mut self.data[at..at + s.size_of_raw_data as usize];
        area.fill(0);
        area[..contents.len()].copy_from_slice(contents);
        s.virtual_size = len;
        let (name, start, end) = (
            s.name_lossy(),
            s.virtual_address,
            s.virtual_address.saturating_add(len),
        );
        // ukify does the same; with the 252 stub (0x200 section alignment) the merged .sbat runs
        // into .sdmagic's memory. Harmless for booting (nothing reads .sbat from memory), but say so.
        if let Some(o) = self
            .sections
            .iter()
            .find(|o| o.virtual_address > start && o.virtual_address < end)
        {
            tracing::info!(
                "{name} ({len:#x} bytes at {start:#x}) now overlaps {} at {:#x} in memory",
                o.name_lossy(),
                o.virtual_address
            );
        }
        Ok(())
    }

    fn append(
        &mut self,
        name: &str,
        contents: &[u8],
        len: u32,
        header_offset: usize,
    ) -> Result<()> {
        let last = self.sections.last().context("the stub has no sections")?;
        let va = round_up(
            u64::from(last.virtual_address) + u64::from(last.virtual_size),
            self.section_alignment,
        );
        let ptr = round_up(self.data.len() as u64, self.file_alignment);
        let raw = round_up(len.into(), self.file_alignment);
        let mut raw_name = [0u8; 8];
        raw_name[..name.len()].copy_from_slice(name.as_bytes());
        let kind = if name == ".linux" {
            SCN_CNT_CODE
        } else {
            SCN_CNT_INITIALIZED_DATA
        };
        let section = Section {
            raw_name,
            virtual_size: len,
            virtual_address: field(va, "VirtualAddress")?,
            size_of_raw_data: field(raw, "SizeOfRawData")?,
            pointer_to_raw_data: field(ptr, "PointerToRawData")?,
            characteristics: SCN_MEM_READ | kind,
            header_offset,
        };
        self.size_of_initialized_data = self
            .size_of_initialized_data
            .checked_add(len)
            .context("SizeOfInitializedData overflows 32 bits")?;
        self.data.resize(ptr as usize, 0);
        self.data.extend_from_slice(contents);
        self.data.resize((ptr + raw) as usize, 0);
        self.sections.push(section);
        Ok(())
    }

    /// Clears `IMAGE_DLLCHARACTERISTICS_NX_COMPAT` unless the kernel PE has it (ukify 257).
    pub fn inherit_nx_compat(&mut self, kernel: &Pe<'_>) {
        if kernel.optional.dll_characteristics & DLL_CHARACTERISTICS_NX_COMPAT == 0 {
            self.dll_characteristics &= !DLL_CHARACTERISTICS_NX_COMPAT;
        }
    }

    /// Writes the header model back: section headers, `NumberOfSections`,
    /// `SizeOfInitializedData`, `DllCharacteristics`, `SizeOfHeaders`, `SizeOfImage` and a zero
    /// `CheckSum`.
    pub fn finish(mut self) -> Result<Vec<u8>> {
        for (i, s) in self.sections.iter().enumerate() {
            let h = &mut self.data[s.header_offset..s.header_offset + SECTION_HEADER_SIZE];
            if i >= self.stub_sections {
                h.fill(0);
            }
            h[..8].copy_from_slice(&s.raw_name);
            let words = [
                s.virtual_size,
                s.virtual_address,
                s.size_of_raw_data,
                s.pointer_to_raw_data,
            ];
            for (k, w) in words.iter().enumerate() {
                h[8 + 4 * k..12 + 4 * k].copy_from_slice(&w.to_le_bytes());
            }
            h[36..40].copy_from_slice(&s.characteristics.to_le_bytes());
        }
        let last = self.sections.last().context("the stub has no sections")?;
        let end = u64::from(last.virtual_address) + u64::from(last.virtual_size);
        let size_of_image = field(round_up(end, self.section_alignment), "SizeOfImage")?;
        let count = u16::try_from(self.sections.len()).context("more than 65535 sections")?;
        let o = &self.offsets;
        let d = &mut self.data;
        d[o.number_of_sections..o.number_of_sections + 2].copy_from_slice(&count.to_le_bytes());
        put32(d, o.size_of_initialized_data, self.size_of_initialized_data);
        d[o.dll_characteristics..o.dll_characteristics + 2]
            .copy_from_slice(&self.dll_characteristics.to_le_bytes());
        put32(d, o.size_of_headers, self.size_of_headers);
        put32(d, o.size_of_image, size_of_image);
        put32(d, o.check_sum, 0);
        Ok(self.data)
    }
}

fn put32(data: &mut [u8], at: usize, v: u32) {
    data[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

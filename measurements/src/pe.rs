//! PE/COFF parsing (filled in by its owner).

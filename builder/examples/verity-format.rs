//! `veritysetup format`-compatible hash device writer, for benchmarks against veritysetup:
//! `verity-format DATA HASH SALT_HEX UUID` prints the root hash.

use std::fs::File;
use std::io::{BufWriter, Write};

use anyhow::{Context, Result};
use builder::verity::{format, Params, Region};

fn main() -> Result<()> {
    let a: Vec<String> = std::env::args().collect();
    let [_, data, hash, salt, uuid] = &a[..] else {
        anyhow::bail!("usage: verity-format DATA HASH SALT_HEX UUID");
    };
    let uuid: [u8; 16] = hex::decode(uuid.replace('-', ""))?
        .try_into()
        .ok()
        .context("UUID is 16 bytes")?;
    let p = Params {
        data_block_size: 4096,
        hash_block_size: 4096,
        salt: hex::decode(salt)?,
        uuid,
    };
    let f = File::open(data).with_context(|| format!("opening {data}"))?;
    let len = f.metadata()?.len();
    let mut out = BufWriter::new(File::create(hash)?);
    let info = format(
        Region {
            file: &f,
            offset: 0,
            len,
        },
        &mut out,
        &p,
    )?;
    out.flush()?;
    println!("{}", hex::encode(info.root_hash));
    Ok(())
}

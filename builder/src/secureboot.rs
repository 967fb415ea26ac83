//! File-level glue around [`measurements::secureboot`]: the keygen directory (`nodeimg keygen
//! --secure-boot DIR`), loading a Secure Boot signer (key + certificate), signing UKIs, and the
//! enrolled signature lists that PCR 7 is predicted from.
//!
//! A keygen directory holds, for each of PK, KEK and db: `NAME.key` (PKCS#8 PEM, 0600),
//! `NAME.crt` (PEM), `NAME.cer` (DER, for cloud consoles), `NAME.esl` (EFI_SIGNATURE_LIST) and
//! `NAME.auth` (time-based authenticated payload: PK and KEK signed by PK, db and dbx by KEK);
//! `dbx.esl` (empty unless `--dbx` gave one; `dbx.auth` only then), `owner.guid` (the
//! signature owner of every list entry) and `OVMF_VARS.fd` (an OVMF variable store with all of
//! it enrolled and Secure Boot enabled).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{anyhow, bail, Context, Result};
use measurements::secureboot::pcr7::EnrolledKeys;
use measurements::secureboot::varstore::{self, Variable};
use measurements::secureboot::{
    auth, authenticode, cert, esl, EfiTime, Guid, EFI_GLOBAL_VARIABLE, EFI_IMAGE_SECURITY_DATABASE,
    SECURE_VARIABLE_ATTRS,
};
use measurements::signer::{RsaKey, Signer};
use x509_cert::Certificate;

use crate::infile::{read_capped, KEY_MAX};

/// The variable store template `keygen --secure-boot` enrolls into (Debian `ovmf`).
pub const DEFAULT_VARS_TEMPLATE: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
/// Largest variable store template read.
pub const VARS_MAX: u64 = 64 << 20;
/// Largest signature list read (Microsoft's dbx is ~15 KiB; 4 MiB leaves ample room).
pub const ESL_MAX: u64 = 4 << 20;
/// The enrolled VARS file name in a keygen directory.
pub const VARS_FILE: &str = "OVMF_VARS.fd";

/// A Secure Boot signer: the key and the certificate the firmware finds in db.
pub struct DbSigner {
    /// The private key.
    pub key: Box<dyn Signer>,
    /// Its certificate.
    pub certificate: Certificate,
}

impl std::fmt::Debug for DbSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DbSigner({}, '{}')",
            self.key.describe(),
            self.certificate.tbs_certificate.subject
        )
    }
}

/// Reads an RSA key file (PEM).
pub fn read_rsa_key(path: &Path) -> Result<RsaKey> {
    let pem = zeroize::Zeroizing::new(read_capped(path, KEY_MAX, "Secure Boot key")?);
    Ok(RsaKey::from_pem(&pem, &path.display().to_string())?)
}

/// Reads a certificate file (PEM or DER) and checks the firmware can use it now.
pub fn read_certificate(path: &Path) -> Result<Certificate> {
    let bytes = read_capped(path, cert::CERT_MAX as u64, "certificate")?;
    let label = path.display().to_string();
    let c = cert::parse(&bytes, &label)?;
    cert::check_usable(&c, &label, SystemTime::now())?;
    Ok(c)
}

/// Loads a signer from a key (a PEM file or a `pkcs11:` URI) and a certificate file, and
/// checks they belong together.
pub fn load_signer(key: &Path, certificate: &Path) -> Result<DbSigner> {
    let c = read_certificate(certificate)?;
    let text = key.to_string_lossy();
    let k: Box<dyn Signer> = if crate::pkcs11::is_uri(&text) {
        Box::new(crate::pkcs11::TokenKey::open(&text)?)
    } else {
        Box::new(read_rsa_key(key)?)
    };
    measurements::secureboot::pkcs7::check_pair(&c, k.as_ref())
        .with_context(|| format!("{} and {}", k.describe(), certificate.display()))?;
    Ok(DbSigner {
        key: k,
        certificate: c,
    })
}

/// Signs UKI bytes (any earlier signature is replaced).
pub fn sign_uki(uki: &[u8], signer: &DbSigner) -> Result<Vec<u8>> {
    Ok(authenticode::sign(
        uki,
        &signer.certificate,
        signer.key.as_ref(),
    )?)
}

/// Reads the enrolled lists (each parsed and checked); `dbx = None` means no dbx.
pub fn read_enrolled(pk: &Path, kek: &Path, db: &Path, dbx: Option<&Path>) -> Result<EnrolledKeys> {
    let read = |p: &Path| -> Result<Vec<u8>> {
        let v = read_capped(p, ESL_MAX, "signature list")?;
        esl::parse(&v).with_context(|| format!("{}", p.display()))?;
        Ok(v)
    };
    let keys = EnrolledKeys {
        pk: read(pk)?,
        kek: read(kek)?,
        db: read(db)?,
        dbx: dbx.map(read).transpose()?.unwrap_or_default(),
    };
    if keys.db.is_empty() {
        bail!(
            "{}: db is empty, so the firmware would refuse every signed image",
            db.display()
        );
    }
    Ok(keys)
}

/// The enrolled lists of a keygen directory.
pub fn read_enrolled_dir(dir: &Path) -> Result<EnrolledKeys> {
    let dbx = dir.join("dbx.esl");
    read_enrolled(
        &dir.join("PK.esl"),
        &dir.join("KEK.esl"),
        &dir.join("db.esl"),
        dbx.exists().then_some(dbx.as_path()),
    )
}

/// What `keygen --secure-boot` is asked to make.
#[derive(Debug, Clone)]
pub struct KeygenOptions {
    /// `CN=` prefix of the certificates (`<prefix> PK` …).
    pub common_name: String,
    /// Signature owner of the list entries (random if `None`).
    pub owner: Option<Guid>,
    /// More certificates to put into db (PEM or DER files), after ours.
    pub extra_db: Vec<PathBuf>,
    /// A dbx signature list to enroll.
    pub dbx: Option<PathBuf>,
    /// The db key is this PKCS#11 token key (RSA) instead of a new `db.key` file.
    pub db_key: Option<String>,
    /// The variable store to enroll into.
    pub vars_template: PathBuf,
    /// Time stamp of the `.auth` payloads and enrolled variables, and the certificates'
    /// notBefore (Unix seconds: SOURCE_DATE_EPOCH or now).
    pub time: u64,
}

/// One role's key pair, generated or read from the directory.
struct Pair {
    name: &'static str,
    key: Box<dyn Signer>,
    /// The private key file to write (a new file key), if any.
    pem: Option<zeroize::Zeroizing<String>>,
    cert: Certificate,
    /// The key (and certificate) existed already: only the derived files are written.
    reused: bool,
}

/// A self-signed certificate for `key`, valid from `time` for 20 years.
fn certify(
    key: &dyn Signer,
    name: &str,
    cn: &str,
    code_signing: bool,
    time: u64,
) -> Result<Certificate> {
    let serial = random_bytes::<16>()?;
    Ok(cert::self_signed(
        key,
        &format!("{cn} {name}"),
        &serial,
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(time),
        20,
        code_signing,
    )?)
}

fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| anyhow!("reading the system random source: {e}"))?;
    Ok(b)
}

/// Uses `DIR/NAME.key` + `DIR/NAME.crt` when both exist, else generates a pair.
fn pair(dir: &Path, name: &'static str, cn: &str, code_signing: bool, time: u64) -> Result<Pair> {
    let (key_path, crt_path) = (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.crt")),
    );
    match (key_path.exists(), crt_path.exists()) {
        (true, true) => {
            let s = load_signer(&key_path, &crt_path)?;
            Ok(Pair {
                name,
                key: s.key,
                pem: None,
                cert: s.certificate,
                reused: true,
            })
        }
        (false, false) => {
            let key = RsaKey::generate(&mut rand_core::OsRng, 2048, name)?;
            let cert = certify(&key, name, cn, code_signing, time)?;
            Ok(Pair {
                name,
                pem: Some(key.to_pkcs8_pem()?),
                key: Box::new(key),
                cert,
                reused: false,
            })
        }
        (k, _) => bail!(
            "{} exists but {} does not: give both (an existing pair is reused) or neither",
            if k {
                key_path.display()
            } else {
                crt_path.display()
            },
            if k {
                crt_path.display()
            } else {
                key_path.display()
            }
        ),
    }
}

/// What `keygen --secure-boot` wrote.
#[derive(Debug)]
pub struct KeygenReport {
    /// Files written, in order.
    pub written: Vec<PathBuf>,
    /// Pairs reused from the directory.
    pub reused: Vec<&'static str>,
    /// The owner GUID.
    pub owner: Guid,
}

/// Makes (or completes) a keygen directory. Nothing is overwritten: every file to write must
/// be absent, else nothing is written. A new directory is staged and renamed into place.
pub fn keygen(dir: &Path, opts: &KeygenOptions) -> Result<KeygenReport> {
    let existed = dir.is_dir();
    if dir.exists() && !existed {
        bail!("{} exists and is not a directory", dir.display());
    }
    let owner = match opts.owner {
        Some(g) => g,
        None => {
            let mut b = random_bytes::<16>()?;
            b[7] = (b[7] & 0x0f) | 0x40; // version 4 (d3's high nibble, stored little-endian)
            b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
            Guid(b)
        }
    };
    let pk = pair(dir, "PK", &opts.common_name, false, opts.time)?;
    let kek = pair(dir, "KEK", &opts.common_name, false, opts.time)?;
    let db = match &opts.db_key {
        // The db key lives in a token: only its certificate is written (self-signed by it).
        Some(uri) => {
            let key = crate::pkcs11::TokenKey::open(uri)?;
            let cert = certify(&key, "db", &opts.common_name, true, opts.time)?;
            Pair {
                name: "db",
                key: Box::new(key),
                pem: None,
                cert,
                reused: false,
            }
        }
        None => pair(dir, "db", &opts.common_name, true, opts.time)?,
    };
    let mut files: Vec<(String, Vec<u8>, u32)> = Vec::new();
    for p in [&pk, &kek, &db] {
        if !p.reused {
            if let Some(pem) = &p.pem {
                files.push((format!("{}.key", p.name), pem.as_bytes().to_vec(), 0o600));
            }
            files.push((
                format!("{}.crt", p.name),
                cert::to_pem(&p.cert)?.into_bytes(),
                0o644,
            ));
        }
        files.push((format!("{}.cer", p.name), cert::to_der(&p.cert)?, 0o644));
    }
    let pk_esl = esl::x509(owner, &cert::to_der(&pk.cert)?);
    let kek_esl = esl::x509(owner, &cert::to_der(&kek.cert)?);
    let mut db_esl = esl::x509(owner, &cert::to_der(&db.cert)?);
    for extra in &opts.extra_db {
        let bytes = read_capped(extra, cert::CERT_MAX as u64, "certificate")?;
        let c = cert::parse(&bytes, &extra.display().to_string())?;
        db_esl.extend(esl::x509(owner, &cert::to_der(&c)?));
    }
    let dbx_esl = match &opts.dbx {
        Some(p) => {
            let v = read_capped(p, ESL_MAX, "dbx signature list")?;
            esl::parse(&v).with_context(|| format!("{}", p.display()))?;
            v
        }
        None => Vec::new(),
    };
    let time = EfiTime::from_unix(opts.time);
    let signed = |name: &str, guid: Guid, data: &[u8], by: &Pair| -> Result<Vec<u8>> {
        Ok(auth::payload(
            name,
            guid,
            SECURE_VARIABLE_ATTRS,
            time,
            data,
            &by.cert,
            by.key.as_ref(),
        )?)
    };
    let mut vars = vec![
        ("PK", EFI_GLOBAL_VARIABLE, pk_esl, &pk),
        ("KEK", EFI_GLOBAL_VARIABLE, kek_esl, &pk),
        ("db", EFI_IMAGE_SECURITY_DATABASE, db_esl, &kek),
    ];
    if !dbx_esl.is_empty() {
        vars.push(("dbx", EFI_IMAGE_SECURITY_DATABASE, dbx_esl.clone(), &kek));
    } else {
        files.push(("dbx.esl".into(), Vec::new(), 0o644));
    }
    for (name, guid, data, by) in &vars {
        files.push((format!("{name}.esl"), data.clone(), 0o644));
        files.push((
            format!("{name}.auth"),
            signed(name, *guid, data, by)?,
            0o644,
        ));
    }
    let template = read_capped(
        &opts.vars_template,
        VARS_MAX,
        "OVMF variable store template",
    )?;
    let mut enrolled: Vec<Variable> = vars
        .iter()
        .map(|(name, guid, data, _)| Variable {
            name: name.to_string(),
            guid: *guid,
            attributes: SECURE_VARIABLE_ATTRS,
            timestamp: time,
            data: data.clone(),
        })
        .collect();
    enrolled.extend(varstore::secure_boot_switches());
    // Sorted by name, as virt-fw-vars writes a store (the same keys give the same bytes).
    enrolled.sort_by(|a, b| a.name.cmp(&b.name));
    let store = varstore::enroll(&template, &enrolled)
        .with_context(|| format!("enrolling the keys into {}", opts.vars_template.display()))?;
    files.push((VARS_FILE.into(), store, 0o644));
    files.push((
        "owner.guid".into(),
        format!("{owner}\n").into_bytes(),
        0o644,
    ));
    let written = write_all_new(dir, existed, &files)?;
    Ok(KeygenReport {
        written,
        reused: [&pk, &kek, &db]
            .iter()
            .filter(|p| p.reused)
            .map(|p| p.name)
            .collect(),
        owner,
    })
}

/// Writes `files` into `dir`, none of which may exist. A missing `dir` is staged next to it
/// and renamed into place; in an existing one, files written before a failure are removed.
fn write_all_new(
    dir: &Path,
    existed: bool,
    files: &[(String, Vec<u8>, u32)],
) -> Result<Vec<PathBuf>> {
    if existed {
        let clash: Vec<String> = files
            .iter()
            .filter(|(n, _, _)| dir.join(n).symlink_metadata().is_ok())
            .map(|(n, _, _)| n.clone())
            .collect();
        if !clash.is_empty() {
            bail!(
                "{} already holds {}: refusing to overwrite (move them away or choose another \
                 directory; an existing NAME.key + NAME.crt pair is reused, other files must be \
                 absent)",
                dir.display(),
                clash.join(", ")
            );
        }
        let mut done = Vec::new();
        for (name, bytes, mode) in files {
            let p = dir.join(name);
            if let Err(e) = crate::signing::write_new(&p, bytes, *mode) {
                for d in &done {
                    let _ = std::fs::remove_file(d);
                }
                return Err(e).with_context(|| format!("writing {}", p.display()));
            }
            done.push(p);
        }
        return Ok(done);
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let stage = tempfile::Builder::new()
        .prefix(".nodeimg-keygen-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a staging directory in {}", parent.display()))?;
    for (name, bytes, mode) in files {
        crate::signing::write_new(&stage.path().join(name), bytes, *mode)
            .with_context(|| format!("writing {name}"))?;
    }
    std::fs::set_permissions(
        stage.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )?;
    let staged = stage.keep();
    if let Err(e) = rename_noreplace(&staged, dir) {
        let _ = std::fs::remove_dir_all(&staged);
        return Err(e).with_context(|| format!("moving the keys into {}", dir.display()));
    }
    Ok(files.iter().map(|(n, _, _)| dir.join(n)).collect())
}

/// `rename(2)` that fails instead of replacing an existing (even empty) target directory.
fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in path"))
    };
    let (f, t) = (c(from)?, c(to)?);
    // SAFETY: both pointers are valid NUL-terminated strings for the duration of the call.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

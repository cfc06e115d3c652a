//! TLS material: given by the operator, or a self-signed certificate made on
//! first start and kept, whose SHA-256 fingerprint clients pin.

use std::path::{Path, PathBuf};

use aws_lc_rs::digest::{SHA256, digest};

/// Paths of a certificate chain and its key, both PEM.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

/// Where the self-signed material lives under the data directory.
pub fn self_signed_paths(data_dir: &Path) -> TlsFiles {
    TlsFiles {
        cert: data_dir.join("tls").join("cert.pem"),
        key: data_dir.join("tls").join("key.pem"),
    }
}

/// Returns the self-signed certificate under `data_dir`, making it first if
/// it does not exist. `names` are the DNS names or IPs it is valid for.
pub fn ensure_self_signed(data_dir: &Path, names: Vec<String>) -> anyhow::Result<TlsFiles> {
    let files = self_signed_paths(data_dir);
    if files.cert.exists() && files.key.exists() {
        return Ok(files);
    }
    let dir = files
        .cert
        .parent()
        .ok_or_else(|| anyhow::anyhow!("no directory for TLS files"))?;
    std::fs::create_dir_all(dir)?;
    let certified = rcgen::generate_simple_self_signed(names)?;
    std::fs::write(&files.cert, certified.cert.pem())?;
    write_private(&files.key, certified.signing_key.serialize_pem().as_bytes())?;
    Ok(files)
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

/// The SHA-256 fingerprint of the first certificate in a PEM file, as
/// colon-separated uppercase hex (what clients pin).
pub fn fingerprint(cert_pem: &Path) -> anyhow::Result<String> {
    let pem = std::fs::read_to_string(cert_pem)?;
    let der = pem_to_der(&pem)
        .ok_or_else(|| anyhow::anyhow!("{} holds no PEM certificate", cert_pem.display()))?;
    Ok(fingerprint_der(&der))
}

/// The fingerprint of a DER certificate.
pub fn fingerprint_der(der: &[u8]) -> String {
    digest(&SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn pem_to_der(pem: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let start = pem.find("-----BEGIN CERTIFICATE-----")? + "-----BEGIN CERTIFICATE-----".len();
    let end = pem[start..].find("-----END CERTIFICATE-----")? + start;
    let b64: String = pem[start..end].split_whitespace().collect();
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let files = ensure_self_signed(dir.path(), vec!["localhost".into()]).unwrap();
        let fp = fingerprint(&files.cert).unwrap();
        assert_eq!(fp.len(), 32 * 3 - 1);
        let again = ensure_self_signed(dir.path(), vec!["localhost".into()]).unwrap();
        assert_eq!(fingerprint(&again.cert).unwrap(), fp);
    }
}

//! Just enough PEM and DER to read an RSA public key from what people upload to a connected
//! app: a `PUBLIC KEY` (SubjectPublicKeyInfo), an `RSA PUBLIC KEY` (PKCS#1) or a
//! `CERTIFICATE`. ring verifies signatures against the PKCS#1 `RSAPublicKey` DER.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Decodes the first PEM block; returns its label and DER bytes.
pub(crate) fn pem_decode(pem: &str) -> Result<(String, Vec<u8>), String> {
    let begin = pem.find("-----BEGIN ").ok_or("no -----BEGIN line")?;
    let rest = &pem[begin + 11..];
    let label_end = rest.find("-----").ok_or("unterminated BEGIN line")?;
    let label = rest[..label_end].to_string();
    let body_start = label_end + 5;
    let end_marker = format!("-----END {label}-----");
    let body_end = rest
        .find(&end_marker)
        .ok_or_else(|| format!("no {end_marker} line"))?;
    let b64: String = rest[body_start..body_end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = STANDARD
        .decode(b64)
        .map_err(|e| format!("bad base64 in PEM body: {e}"))?;
    Ok((label, der))
}

/// One DER element: (tag, content, rest).
fn element(der: &[u8]) -> Result<(u8, &[u8], &[u8]), String> {
    let tag = *der.first().ok_or("truncated DER")?;
    let first = *der.get(1).ok_or("truncated DER length")?;
    let (len, header) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return Err("unsupported DER length".into());
        }
        let bytes = der.get(2..2 + n).ok_or("truncated DER length")?;
        (
            bytes.iter().fold(0usize, |a, b| (a << 8) | *b as usize),
            2 + n,
        )
    };
    let content = der
        .get(header..header + len)
        .ok_or("DER element longer than its input")?;
    Ok((tag, content, &der[header + len..]))
}

/// `SubjectPublicKeyInfo` → the `RSAPublicKey` inside its BIT STRING.
fn spki_to_pkcs1(spki: &[u8]) -> Result<Vec<u8>, String> {
    let (tag, seq, _) = element(spki)?;
    if tag != 0x30 {
        return Err("SubjectPublicKeyInfo is not a SEQUENCE".into());
    }
    let (_, alg, rest) = element(seq)?;
    // rsaEncryption OID 1.2.840.113549.1.1.1
    const RSA_OID: &[u8] = &[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
    ];
    if !alg.starts_with(RSA_OID) {
        return Err("the key is not an RSA key (Salesforce JWT assertions are RS256)".into());
    }
    let (tag, bits, _) = element(rest)?;
    if tag != 0x03 || bits.first() != Some(&0) {
        return Err("SubjectPublicKeyInfo has no public key BIT STRING".into());
    }
    Ok(bits[1..].to_vec())
}

/// Certificate → its SubjectPublicKeyInfo (the 7th field of TBSCertificate when the explicit
/// version is present, the 6th otherwise).
fn certificate_spki(cert: &[u8]) -> Result<Vec<u8>, String> {
    let (_, cert_seq, _) = element(cert)?;
    let (_, tbs, _) = element(cert_seq)?;
    let mut rest = tbs;
    let mut fields = Vec::new();
    while !rest.is_empty() {
        let start = rest;
        let (tag, _, next) = element(rest)?;
        fields.push((tag, &start[..start.len() - next.len()]));
        rest = next;
    }
    let offset = if fields.first().is_some_and(|(t, _)| *t == 0xa0) {
        1
    } else {
        0
    };
    fields
        .get(offset + 5)
        .map(|(_, raw)| raw.to_vec())
        .ok_or_else(|| "certificate has no subjectPublicKeyInfo".into())
}

/// The PKCS#1 `RSAPublicKey` DER from any of the accepted PEM forms.
pub(crate) fn rsa_public_key_der(pem: &str) -> Result<Vec<u8>, String> {
    let (label, der) = pem_decode(pem)?;
    match label.as_str() {
        "PUBLIC KEY" => spki_to_pkcs1(&der),
        "RSA PUBLIC KEY" => Ok(der),
        "CERTIFICATE" => spki_to_pkcs1(&certificate_spki(&der)?),
        other => Err(format!(
            "expected a PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE PEM block, found {other:?}"
        )),
    }
}

/// Verifies an RS256 (RSASSA-PKCS1-v1_5 with SHA-256) signature.
pub(crate) fn verify_rs256(pkcs1_der: &[u8], message: &[u8], signature: &[u8]) -> bool {
    ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, pkcs1_der)
        .verify(message, signature)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBLIC: &str = include_str!("vendors/salesforce_keys/demo_public_key.pem");
    const CERT: &str = include_str!("vendors/salesforce_keys/demo_certificate.pem");
    const PRIVATE: &str = include_str!("vendors/salesforce_keys/demo_private_key.pem");

    #[test]
    fn public_key_and_certificate_give_the_same_rsa_key_and_verify_signatures() {
        let a = rsa_public_key_der(PUBLIC).unwrap();
        let b = rsa_public_key_der(CERT).unwrap();
        assert_eq!(a, b);
        let (_, pk8) = pem_decode(PRIVATE).unwrap();
        let kp = ring::signature::RsaKeyPair::from_pkcs8(&pk8).unwrap();
        let mut sig = vec![0; kp.public().modulus_len()];
        kp.sign(
            &ring::signature::RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            b"hello",
            &mut sig,
        )
        .unwrap();
        assert!(verify_rs256(&a, b"hello", &sig));
        assert!(!verify_rs256(&a, b"hellO", &sig));
    }

    #[test]
    fn wrong_pem_labels_are_explained() {
        let err = rsa_public_key_der(PRIVATE).unwrap_err();
        assert!(err.contains("PRIVATE KEY"), "{err}");
    }
}

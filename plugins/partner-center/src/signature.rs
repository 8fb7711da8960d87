//! What checking a Partner Center webhook signature needs, in plain Rust: PEM and DER
//! certificates (just the fields a verifier reads), RSASSA-PKCS1-v1_5 with SHA-256 over a
//! Montgomery modular exponentiation. Verification only: nothing here handles a private key,
//! so timing does not matter.

use sha2::{Digest, Sha256};

/// `sha256WithRSAEncryption`, 1.2.840.113549.1.1.11.
const SHA256_WITH_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];
/// `rsaEncryption`, 1.2.840.113549.1.1.1.
const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// `organizationName`, 2.5.4.10.
const ORGANIZATION: &[u8] = &[0x55, 0x04, 0x0a];
/// DER of `DigestInfo { sha256, NULL }` up to the digest itself.
const SHA256_DIGEST_INFO: &[u8] = &[
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// The fields of an X.509 certificate a webhook verifier needs.
#[derive(Debug)]
pub struct Certificate {
    /// The DER `tbsCertificate`, which the issuer signed.
    pub tbs: Vec<u8>,
    pub signature_algorithm: Vec<u8>,
    pub signature: Vec<u8>,
    /// DER of the issuer and subject names, compared byte for byte when chaining.
    pub issuer: Vec<u8>,
    pub subject: Vec<u8>,
    /// `YYYYMMDDHHMMSS`, UTC.
    pub not_before: String,
    pub not_after: String,
    pub key: RsaPublicKey,
}

#[derive(Debug, Clone)]
pub struct RsaPublicKey {
    /// Big-endian, without leading zeros.
    pub modulus: Vec<u8>,
    pub exponent: Vec<u8>,
}

/// One DER element: tag, content, and the whole element's bytes.
struct Tlv<'a> {
    tag: u8,
    content: &'a [u8],
    whole: &'a [u8],
}

fn tlv(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), String> {
    let bad = || "malformed DER".to_string();
    let tag = *input.first().ok_or_else(bad)?;
    let first = *input.get(1).ok_or_else(bad)?;
    let (len, header) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return Err(bad());
        }
        let bytes = input.get(2..2 + n).ok_or_else(bad)?;
        (
            bytes.iter().fold(0usize, |acc, b| (acc << 8) | *b as usize),
            2 + n,
        )
    };
    let end = header
        .checked_add(len)
        .filter(|e| *e <= input.len())
        .ok_or_else(bad)?;
    Ok((
        Tlv {
            tag,
            content: &input[header..end],
            whole: &input[..end],
        },
        &input[end..],
    ))
}

fn expect(input: &[u8], tag: u8) -> Result<(Tlv<'_>, &[u8]), String> {
    let (t, rest) = tlv(input)?;
    if t.tag != tag {
        return Err(format!("expected DER tag {tag:#04x}, found {:#04x}", t.tag));
    }
    Ok((t, rest))
}

fn time(t: &Tlv<'_>) -> Result<String, String> {
    let text = std::str::from_utf8(t.content)
        .map_err(|_| "a certificate time is not text")?
        .trim_end_matches('Z');
    match t.tag {
        // UTCTime YYMMDDHHMMSS: years 50..99 are 19xx.
        0x17 if text.len() == 12 => Ok(format!(
            "{}{text}",
            if &text[..2] >= "50" { "19" } else { "20" }
        )),
        0x18 if text.len() == 14 => Ok(text.to_owned()),
        _ => Err("unsupported certificate time format".into()),
    }
}

fn unsigned(int: &[u8]) -> Vec<u8> {
    let start = int.iter().position(|b| *b != 0).unwrap_or(int.len());
    int[start..].to_vec()
}

impl Certificate {
    /// A certificate from PEM (`-----BEGIN CERTIFICATE-----`) or raw DER.
    pub fn parse(bytes: &[u8]) -> Result<Certificate, String> {
        let text = String::from_utf8_lossy(bytes);
        if let Some(start) = text.find("-----BEGIN CERTIFICATE-----") {
            let body = &text[start + 27..];
            let end = body
                .find("-----END CERTIFICATE-----")
                .ok_or("the PEM certificate has no END line")?;
            let der = base64(&body[..end]).ok_or("the PEM certificate is not base64")?;
            return Self::from_der(&der);
        }
        Self::from_der(bytes)
    }

    pub fn from_der(der: &[u8]) -> Result<Certificate, String> {
        let (cert, _) = expect(der, 0x30)?;
        let (tbs, rest) = expect(cert.content, 0x30)?;
        let (alg, rest) = expect(rest, 0x30)?;
        let (sig, _) = expect(rest, 0x03)?;
        let (oid, _) = expect(alg.content, 0x06)?;
        let mut fields = tbs.content;
        if fields.first() == Some(&0xa0) {
            fields = tlv(fields)?.1;
        }
        let (_serial, rest) = expect(fields, 0x02)?;
        let (_sig_alg, rest) = expect(rest, 0x30)?;
        let (issuer, rest) = expect(rest, 0x30)?;
        let (validity, rest) = expect(rest, 0x30)?;
        let (subject, rest) = expect(rest, 0x30)?;
        let (spki, _) = expect(rest, 0x30)?;
        let (not_before, after) = tlv(validity.content)?;
        let (not_after, _) = tlv(after)?;
        let (key_alg, rest) = expect(spki.content, 0x30)?;
        if expect(key_alg.content, 0x06)?.0.content != RSA_ENCRYPTION {
            return Err("the certificate's key is not RSA".into());
        }
        let (bits, _) = expect(rest, 0x03)?;
        let (rsa, _) = expect(bits.content.get(1..).ok_or("empty key")?, 0x30)?;
        let (n, rest) = expect(rsa.content, 0x02)?;
        let (e, _) = expect(rest, 0x02)?;
        Ok(Certificate {
            tbs: tbs.whole.to_vec(),
            signature_algorithm: oid.content.to_vec(),
            signature: sig.content.get(1..).ok_or("empty signature")?.to_vec(),
            issuer: issuer.whole.to_vec(),
            subject: subject.whole.to_vec(),
            not_before: time(&not_before)?,
            not_after: time(&not_after)?,
            key: RsaPublicKey {
                modulus: unsigned(n.content),
                exponent: unsigned(e.content),
            },
        })
    }

    /// The subject's organisation names (`O=`).
    pub fn organizations(&self) -> Vec<String> {
        let mut out = Vec::new();
        let Ok((name, _)) = expect(&self.subject, 0x30) else {
            return out;
        };
        let mut sets = name.content;
        while let Ok((set, rest)) = tlv(sets) {
            sets = rest;
            let mut attrs = set.content;
            while let Ok((attr, rest)) = expect(attrs, 0x30) {
                attrs = rest;
                if let Ok((oid, value)) = expect(attr.content, 0x06)
                    && oid.content == ORGANIZATION
                    && let Ok((v, _)) = tlv(value)
                {
                    out.push(String::from_utf8_lossy(v.content).into_owned());
                }
            }
        }
        out
    }

    /// Whether `issuer` signed this certificate (names chain and the RSA-SHA256 signature holds).
    pub fn issued_by(&self, issuer: &Certificate) -> bool {
        self.issuer == issuer.subject
            && self.signature_algorithm == SHA256_WITH_RSA
            && verify(&issuer.key, &self.tbs, &self.signature)
    }

    /// Whether `now` (`YYYYMMDDHHMMSS`) lies within the validity period.
    pub fn valid_at(&self, now: &str) -> bool {
        self.not_before.as_str() <= now && now <= self.not_after.as_str()
    }
}

/// Standard base64 (PEM bodies, `Signature` headers), ignoring whitespace.
pub fn base64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes().filter(|c| !c.is_ascii_whitespace()) {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// RSASSA-PKCS1-v1_5 with SHA-256: whether `signature` signs `message` under `key`.
pub fn verify(key: &RsaPublicKey, message: &[u8], signature: &[u8]) -> bool {
    let k = key.modulus.len();
    if k < 128
        || signature.len() != k
        || key.exponent.is_empty()
        || key.modulus.last().is_none_or(|b| b & 1 == 0)
    {
        return false;
    }
    let n = limbs(&key.modulus, k.div_ceil(4));
    let s = limbs(signature, n.len());
    if !less(&s, &n) {
        return false;
    }
    let m = modpow(&s, &key.exponent, &n);
    let encoded = bytes(&m, k);
    let digest = Sha256::digest(message);
    let mut expected = vec![0x00, 0x01];
    expected.resize(k - SHA256_DIGEST_INFO.len() - digest.len() - 1, 0xff);
    expected.push(0x00);
    expected.extend_from_slice(SHA256_DIGEST_INFO);
    expected.extend_from_slice(&digest);
    expected.len() == k && encoded == expected
}

/// Big-endian bytes as `len` little-endian 32-bit limbs.
fn limbs(be: &[u8], len: usize) -> Vec<u32> {
    let mut out = vec![0u32; len];
    for (i, b) in be.iter().rev().enumerate() {
        out[i / 4] |= u32::from(*b) << (8 * (i % 4));
    }
    out
}

fn bytes(limbs: &[u32], len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    for i in 0..len {
        out[len - 1 - i] = (limbs.get(i / 4).copied().unwrap_or(0) >> (8 * (i % 4))) as u8;
    }
    out
}

fn less(a: &[u32], b: &[u32]) -> bool {
    for i in (0..a.len().max(b.len())).rev() {
        let (x, y) = (
            a.get(i).copied().unwrap_or(0),
            b.get(i).copied().unwrap_or(0),
        );
        if x != y {
            return x < y;
        }
    }
    false
}

/// `a -= b` over `a.len()` limbs (a >= b).
fn sub(a: &mut [u32], b: &[u32]) {
    let mut borrow = 0i64;
    for (i, limb) in a.iter_mut().enumerate() {
        let d = i64::from(*limb) - i64::from(b.get(i).copied().unwrap_or(0)) - borrow;
        *limb = d as u32;
        borrow = i64::from(d < 0);
    }
}

/// Montgomery product `a * b * R^-1 mod n` with R = 2^(32·len), n odd.
fn mont_mul(a: &[u32], b: &[u32], n: &[u32], n0: u32) -> Vec<u32> {
    let k = n.len();
    let mut t = vec![0u32; k + 2];
    for &ai in a {
        let mut carry = 0u64;
        for j in 0..k {
            let s = u64::from(t[j]) + u64::from(ai) * u64::from(b[j]) + carry;
            t[j] = s as u32;
            carry = s >> 32;
        }
        let s = u64::from(t[k]) + carry;
        t[k] = s as u32;
        t[k + 1] += (s >> 32) as u32;
        let m = t[0].wrapping_mul(n0);
        let mut carry = (u64::from(t[0]) + u64::from(m) * u64::from(n[0])) >> 32;
        for j in 1..k {
            let s = u64::from(t[j]) + u64::from(m) * u64::from(n[j]) + carry;
            t[j - 1] = s as u32;
            carry = s >> 32;
        }
        let s = u64::from(t[k]) + carry;
        t[k - 1] = s as u32;
        let s = u64::from(t[k + 1]) + (s >> 32);
        t[k] = s as u32;
        t[k + 1] = 0;
    }
    if !less(&t[..k + 1], n) {
        let mut r = t[..k + 1].to_vec();
        sub(&mut r, n);
        r.truncate(k);
        return r;
    }
    t.truncate(k);
    t
}

/// `base^exp mod n` (exp big-endian bytes).
fn modpow(base: &[u32], exp: &[u8], n: &[u32]) -> Vec<u32> {
    let k = n.len();
    // -n^-1 mod 2^32 by Newton's iteration.
    let mut inv: u32 = 1;
    for _ in 0..5 {
        inv = inv.wrapping_mul(2u32.wrapping_sub(n[0].wrapping_mul(inv)));
    }
    let n0 = inv.wrapping_neg();
    // R^2 mod n by doubling 1 modulo n, 2·32·k times.
    let mut r2 = vec![0u32; k + 1];
    r2[0] = 1;
    for _ in 0..64 * k {
        let mut carry = 0u32;
        for limb in r2.iter_mut() {
            let next = *limb >> 31;
            *limb = (*limb << 1) | carry;
            carry = next;
        }
        if !less(&r2, n) {
            sub(&mut r2, n);
        }
    }
    r2.truncate(k);
    let one: Vec<u32> = (0..k).map(|i| u32::from(i == 0)).collect();
    let b = mont_mul(base, &r2, n, n0);
    let mut x = mont_mul(&one, &r2, n, n0);
    for byte in exp {
        for bit in (0..8).rev() {
            x = mont_mul(&x, &x, n, n0);
            if byte >> bit & 1 == 1 {
                x = mont_mul(&x, &b, n, n0);
            }
        }
    }
    mont_mul(&x, &one, n, n0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sandbox's published test CA and the dispatch certificate it issued.
    const CA: &str =
        include_str!("../../../host/sandbox/src/vendors/partner_center_keys/test_ca.pem");
    const LEAF: &str = include_str!(
        "../../../host/sandbox/src/vendors/partner_center_keys/dispatch_certificate.pem"
    );

    #[test]
    fn certificates_chain_to_their_issuer_only() {
        let ca = Certificate::parse(CA.as_bytes()).unwrap();
        let leaf = Certificate::parse(LEAF.as_bytes()).unwrap();
        assert_eq!(leaf.key.modulus.len(), 256);
        assert_eq!(leaf.key.exponent, vec![1, 0, 1]);
        assert!(
            leaf.organizations()
                .contains(&"Microsoft Corporation".to_string())
        );
        assert!(
            leaf.issued_by(&ca),
            "the test CA signed the dispatch certificate"
        );
        assert!(ca.issued_by(&ca), "the CA is self-signed");
        assert!(!ca.issued_by(&leaf));
        let mut tampered = Certificate::parse(LEAF.as_bytes()).unwrap();
        tampered.tbs[40] ^= 1;
        assert!(!tampered.issued_by(&ca));
        assert!(leaf.valid_at("20270101000000") && !leaf.valid_at("20200101000000"));
    }

    #[test]
    fn modpow_matches_small_numbers() {
        // 4^13 mod 497 = 445 (n odd, one limb).
        assert_eq!(modpow(&[4], &[13], &[497]), vec![445]);
        // Two limbs: (2^40 + 3)^65537 mod (2^61 - 1), checked with u128 arithmetic.
        let n: u128 = (1 << 61) - 1;
        let base: u128 = (1 << 40) + 3;
        let mut expected: u128 = 1;
        let mut b = base % n;
        let mut e = 65_537u32;
        while e > 0 {
            if e & 1 == 1 {
                expected = expected * b % n;
            }
            b = b * b % n;
            e >>= 1;
        }
        let got = modpow(
            &[base as u32, (base >> 32) as u32],
            &[1, 0, 1],
            &[n as u32, (n >> 32) as u32],
        );
        assert_eq!(u128::from(got[0]) | u128::from(got[1]) << 32, expected);
    }
}

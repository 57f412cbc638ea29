//! Signed C2PA manifests ("Content Credentials") on the images limner makes.
//!
//! The XMP label of `limner_data::provenance` says an image is AI-made; anyone can write or strip
//! XMP. A C2PA manifest says the same thing **signed**: a claim (made by a trained model, by
//! which software, from which recipe and model, for whom) bound by a hash to the file's bytes and
//! signed with an X.509 certificate. Change one pixel and a C2PA reader reports the manifest as
//! invalid (`assertion.dataHash.mismatch`).
//!
//! Signing uses the `c2pa` crate (the Content Authenticity Initiative's Rust SDK) with its
//! pure-Rust crypto (no OpenSSL). The certificate is the user's:
//! - [`Credentials::from_files`] reads a PEM certificate chain (signing certificate first, then
//!   its issuers; the root may be left out) and its PEM (PKCS#8) private key. The signing
//!   algorithm follows the key: P-256 → ES256, P-384 → ES384, P-521 → ES512, Ed25519, RSA → PS256.
//! - [`Credentials::from_env`] reads the same from `$LIMNER_C2PA_CERT` and `$LIMNER_C2PA_KEY`;
//!   with both set, every image limner writes is signed (see `limner_data::provenance`).
//! - [`throwaway`] makes a fresh test CA and signing certificate (never trusted by anyone else;
//!   for tests and for trying the feature out: `limner c2pa-cert --out DIR`).
//!
//! C2PA's certificate profile asks the signing certificate for: X.509 v3, not a CA, key usage
//! `digitalSignature`, extended key usage `emailProtection` (or `documentSigning` where the
//! verifier allows it), an authority key identifier, and an issuer other than itself (no
//! self-signed leaf). Commercial "document signing" certificates meet it.
//!
//! [`read`] verifies a file's manifest. Without trust anchors a well-signed file reads
//! [`State::Valid`] (the signature and hashes hold, the signer is unknown); with the signer's
//! root among `trust_anchors_pem` it reads [`State::Trusted`].

use std::io::Cursor;

use anyhow::{anyhow, bail, Context as _, Result};
use c2pa::{validation_results::ValidationState, Builder, BuilderIntent, Context, DigitalSourceType, Reader, Settings, SigningAlg};
use serde::Serialize;
use serde_json::json;

/// The label of limner's own assertion (the recipe and the model's hash).
pub const RECIPE_ASSERTION: &str = "dev.limner.recipe";
/// The environment variables that name the signing certificate chain and its key.
pub const ENV_CERT: &str = "LIMNER_C2PA_CERT";
pub const ENV_KEY: &str = "LIMNER_C2PA_KEY";
/// The largest image this module signs or reads (C2PA works on the whole file in memory).
pub const MAX_BYTES: usize = 256 << 20;

/// A signing certificate chain and its private key, both PEM.
#[derive(Clone)]
pub struct Credentials {
    pub cert_chain_pem: Vec<u8>,
    pub private_key_pem: Vec<u8>,
    pub alg: SigningAlg,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("alg", &self.alg).field("cert_chain_pem", &format!("{} bytes", self.cert_chain_pem.len())).finish_non_exhaustive()
    }
}

impl Credentials {
    /// PEM certificate chain + PEM private key; the algorithm is read off the key.
    pub fn from_pem(cert_chain_pem: Vec<u8>, private_key_pem: Vec<u8>) -> Result<Self> {
        let cert_text = std::str::from_utf8(&cert_chain_pem).map_err(|_| anyhow!("the certificate chain is not PEM text"))?;
        if !cert_text.contains("-----BEGIN CERTIFICATE-----") {
            bail!("the certificate chain holds no `-----BEGIN CERTIFICATE-----` block (give the PEM chain: signing certificate first, then its issuers)");
        }
        let alg = key_algorithm(&private_key_pem)?;
        Ok(Self { cert_chain_pem, private_key_pem, alg })
    }

    /// Reads a PEM certificate chain and a PEM private key from files.
    pub fn from_files(cert: &std::path::Path, key: &std::path::Path) -> Result<Self> {
        let c = std::fs::read(cert).with_context(|| format!("cannot read the C2PA certificate chain {}", cert.display()))?;
        let k = std::fs::read(key).with_context(|| format!("cannot read the C2PA private key {}", key.display()))?;
        Self::from_pem(c, k).with_context(|| format!("C2PA credentials {} + {}", cert.display(), key.display()))
    }

    /// The credentials `$LIMNER_C2PA_CERT` and `$LIMNER_C2PA_KEY` name, `None` when neither is
    /// set; an error when only one is, or when they do not load.
    pub fn from_env() -> Result<Option<Self>> {
        let cert = std::env::var_os(ENV_CERT).filter(|v| !v.is_empty());
        let key = std::env::var_os(ENV_KEY).filter(|v| !v.is_empty());
        match (cert, key) {
            (None, None) => Ok(None),
            (Some(c), Some(k)) => Self::from_files(c.as_ref(), k.as_ref()).map(Some),
            (Some(_), None) => bail!("${ENV_CERT} is set but ${ENV_KEY} is not: set both (or neither) to sign images with C2PA"),
            (None, Some(_)) => bail!("${ENV_KEY} is set but ${ENV_CERT} is not: set both (or neither) to sign images with C2PA"),
        }
    }
}

/// Reads the signing algorithm off a PEM private key (PKCS#8; SEC1 EC and PKCS#1 RSA keys are
/// named so the user can convert them).
fn key_algorithm(pem: &[u8]) -> Result<SigningAlg> {
    let text = std::str::from_utf8(pem).map_err(|_| anyhow!("the private key is not PEM text"))?;
    if text.contains("BEGIN EC PRIVATE KEY") || text.contains("BEGIN RSA PRIVATE KEY") {
        bail!("the private key is in SEC1/PKCS#1 form: convert it to PKCS#8 (`openssl pkcs8 -topk8 -nocrypt -in key.pem -out key.p8.pem`)");
    }
    if text.contains("BEGIN ENCRYPTED PRIVATE KEY") {
        bail!("the private key is encrypted: give an unencrypted PKCS#8 key (keep it readable only by you)");
    }
    let der = pem_body(text, "PRIVATE KEY").ok_or_else(|| anyhow!("no `-----BEGIN PRIVATE KEY-----` block in the private key"))?;
    // the algorithm OIDs in PKCS#8's AlgorithmIdentifier (DER-encoded, searched as bytes)
    const EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    const P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
    const P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];
    const ED25519: &[u8] = &[0x2b, 0x65, 0x70];
    const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    const RSA_PSS: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];
    let head = &der[..der.len().min(48)];
    let has = |oid: &[u8]| head.windows(oid.len()).any(|w| w == oid);
    Ok(if has(EC) {
        if has(P256) {
            SigningAlg::Es256
        } else if has(P384) {
            SigningAlg::Es384
        } else if has(P521) {
            SigningAlg::Es512
        } else {
            bail!("the EC private key is on a curve C2PA does not allow (use P-256, P-384 or P-521)")
        }
    } else if has(ED25519) {
        SigningAlg::Ed25519
    } else if has(RSA) || has(RSA_PSS) {
        SigningAlg::Ps256
    } else {
        bail!("unknown private key algorithm (C2PA signs with EC P-256/384/521, Ed25519 or RSA-PSS)")
    })
}

/// The DER bytes of the first PEM block labelled `label`.
fn pem_body(text: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)? + begin.len();
    let stop = start + text[start..].find(&end)?;
    let b64: String = text[start..stop].chars().filter(|c| !c.is_whitespace()).collect();
    base64_decode(&b64)
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= val(c)? << (18 - 6 * i);
        }
        let n = chunk.len().saturating_sub(1);
        for i in 0..n {
            out.push((acc >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

/// What limner claims about an image it made (the signed twin of its XMP label).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Claim {
    /// The file's name or a title.
    pub title: String,
    /// `true`: made from a person's photo (IPTC `compositeWithTrainedAlgorithmicMedia`);
    /// `false`: made by a model from a seed or latent (`trainedAlgorithmicMedia`).
    pub composite: bool,
    /// The software, e.g. `limner 0.1.0`.
    pub software: String,
    /// The person who made or curated the image.
    pub creator: Option<String>,
    /// The recipe JSON that re-renders the image.
    pub recipe: Option<String>,
    /// sha256 of the model that made it.
    pub model_sha256: Option<String>,
}

/// The MIME type C2PA wants for an encoded image, read off its first bytes.
pub fn mime_of(bytes: &[u8]) -> Result<&'static str> {
    Ok(if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        "image/jpeg"
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        "image/gif"
    } else if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        "image/webp"
    } else {
        bail!("not a PNG, JPEG, GIF or WebP file: cannot add C2PA credentials")
    })
}

fn context(trust_anchors_pem: Option<&str>) -> Result<Context> {
    // Never reach the network: no OCSP, no remote manifests; trust only what the caller gives.
    let mut settings = json!({
        "verify": { "ocsp_fetch": false, "remote_manifest_fetch": false, "verify_after_sign": false },
    });
    if let Some(anchors) = trust_anchors_pem {
        settings["trust"] = json!({ "user_anchors": anchors });
    }
    let settings = Settings::new().with_json(&settings.to_string()).context("C2PA settings")?;
    Context::new().with_settings(settings).context("C2PA context")
}

/// Signs an encoded image (PNG, JPEG, GIF, WebP): returns the same file with a C2PA manifest
/// store embedded. The pixels and every other chunk (the XMP label too) are kept.
pub fn sign(image: &[u8], claim: &Claim, creds: &Credentials) -> Result<Vec<u8>> {
    if image.len() > MAX_BYTES {
        bail!("image of {} bytes is over the {} MB limit for C2PA signing", image.len(), MAX_BYTES >> 20);
    }
    let mime = mime_of(image)?;
    let mut builder = Builder::from_context(context(None)?)
        .with_definition(json!({
            "title": claim.title,
            "format": mime,
            "claim_generator_info": [{ "name": "limner", "version": env!("CARGO_PKG_VERSION") }],
        }))
        .context("C2PA manifest definition")?;
    let source_type = if claim.composite { DigitalSourceType::CompositeWithTrainedAlgorithmicMedia } else { DigitalSourceType::TrainedAlgorithmicMedia };
    builder.set_intent(BuilderIntent::Create(source_type));
    if let Some(creator) = claim.creator.as_deref().filter(|c| !c.trim().is_empty()) {
        builder
            .add_assertion_json(
                "stds.schema-org.CreativeWork",
                &json!({ "@context": "https://schema.org", "@type": "CreativeWork", "author": [{ "@type": "Person", "name": creator }] }),
            )
            .context("C2PA author assertion")?;
    }
    let recipe: Option<serde_json::Value> = claim.recipe.as_deref().map(|r| serde_json::from_str(r).unwrap_or_else(|_| serde_json::Value::String(r.to_string())));
    builder
        .add_assertion_json(RECIPE_ASSERTION, &json!({ "software": claim.software, "recipe": recipe, "model_sha256": claim.model_sha256 }))
        .context("C2PA recipe assertion")?;
    let signer = c2pa::create_signer::from_keys(&creds.cert_chain_pem, &creds.private_key_pem, creds.alg, None)
        .map_err(|e| anyhow!("the C2PA certificate or key was refused: {e} (the chain must be PEM, signing certificate first; the key PKCS#8 PEM)"))?;
    let mut src = Cursor::new(image);
    let mut dst = Cursor::new(Vec::with_capacity(image.len() + 32 << 10));
    builder.sign(signer.as_ref(), mime, &mut src, &mut dst).map_err(|e| anyhow!("C2PA signing failed: {e}"))?;
    Ok(dst.into_inner())
}

/// How a C2PA reader judges a file's manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Signature and hashes hold, and the signer chains to a given trust anchor.
    Trusted,
    /// Signature and hashes hold; the signer is not among the trust anchors.
    Valid,
    /// Something does not hold (e.g. the pixels changed after signing).
    Invalid,
}

/// What [`read`] found in a file's C2PA manifest.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    pub state: State,
    /// The failure codes (e.g. `assertion.dataHash.mismatch`); empty for a good file.
    pub failures: Vec<String>,
    /// The IPTC digital source type of the `c2pa.created` action.
    pub digital_source_type: Option<String>,
    /// The signer's common name or organisation as the certificate gives it.
    pub signer: Option<String>,
    pub claim_generator: Option<String>,
    pub author: Option<String>,
    /// limner's recipe assertion, when present.
    pub recipe: Option<serde_json::Value>,
}

/// Reads and verifies the C2PA manifest of an encoded image; `None` when it has none.
pub fn read(image: &[u8], trust_anchors_pem: Option<&str>) -> Result<Option<Verdict>> {
    if image.len() > MAX_BYTES {
        bail!("image of {} bytes is over the {} MB limit for C2PA reading", image.len(), MAX_BYTES >> 20);
    }
    let mime = mime_of(image)?;
    let reader = match Reader::from_context(context(trust_anchors_pem)?).with_stream(mime, Cursor::new(image)) {
        Ok(r) => r,
        Err(c2pa::Error::JumbfNotFound) => return Ok(None),
        Err(e) => bail!("cannot read the C2PA manifest: {e}"),
    };
    let state = match reader.validation_state() {
        ValidationState::Trusted => State::Trusted,
        ValidationState::Valid => State::Valid,
        ValidationState::Invalid => State::Invalid,
    };
    let mut failures = Vec::new();
    if let Some(results) = reader.validation_results() {
        if let Some(active) = results.active_manifest() {
            failures.extend(active.failure().iter().map(|s| s.code().to_string()));
        }
    }
    let report: serde_json::Value = serde_json::from_str(&reader.json()).unwrap_or_default();
    let active = reader.active_label().and_then(|l| report["manifests"].get(l)).cloned().unwrap_or_default();
    let assertions = active["assertions"].as_array().cloned().unwrap_or_default();
    let find = |label: &str| assertions.iter().find(|a| a["label"].as_str().is_some_and(|l| l == label || l.starts_with(&format!("{label}.v")))).map(|a| a["data"].clone());
    let digital_source_type = find("c2pa.actions").and_then(|d| {
        d["actions"].as_array()?.iter().find(|a| a["action"] == "c2pa.created")?["digitalSourceType"].as_str().map(str::to_string)
    });
    let author = find("stds.schema-org.CreativeWork").and_then(|d| d["author"][0]["name"].as_str().map(str::to_string));
    let recipe = find(RECIPE_ASSERTION);
    let signer = active["signature_info"]["common_name"].as_str().or(active["signature_info"]["issuer"].as_str()).map(str::to_string);
    let claim_generator = active["claim_generator_info"][0]["name"].as_str().map(|n| match active["claim_generator_info"][0]["version"].as_str() {
        Some(v) => format!("{n} {v}"),
        None => n.to_string(),
    });
    Ok(Some(Verdict { state, failures, digital_source_type, signer, claim_generator, author, recipe }))
}

/// A fresh test certificate authority and a signing certificate it issued (ES256), as C2PA's
/// certificate profile asks. Trusted by nobody unless `ca_pem` is given as a trust anchor: for
/// tests and for trying signing out, never for publishing.
pub struct Throwaway {
    pub credentials: Credentials,
    /// The test CA's certificate (PEM): a trust anchor for [`read`].
    pub ca_pem: String,
}

/// See [`Throwaway`].
pub fn throwaway(common_name: &str) -> Result<Throwaway> {
    use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256};
    let now = std::time::SystemTime::now();
    let mut ca = CertificateParams::default();
    ca.distinguished_name = DistinguishedName::new();
    ca.distinguished_name.push(DnType::CommonName, "limner throw-away test CA (not trusted)");
    ca.distinguished_name.push(DnType::OrganizationName, "limner test");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    ca.not_before = (now - std::time::Duration::from_secs(86_400)).into();
    ca.not_after = (now + std::time::Duration::from_secs(365 * 86_400)).into();
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let mut leaf = CertificateParams::default();
    leaf.distinguished_name = DistinguishedName::new();
    leaf.distinguished_name.push(DnType::CommonName, common_name);
    leaf.distinguished_name.push(DnType::OrganizationName, "limner test");
    leaf.is_ca = IsCa::ExplicitNoCa;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::EmailProtection];
    leaf.use_authority_key_identifier_extension = true;
    leaf.not_before = (now - std::time::Duration::from_secs(86_400)).into();
    leaf.not_after = (now + std::time::Duration::from_secs(365 * 86_400)).into();
    let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;
    let chain = format!("{}{}", leaf_cert.pem(), ca_cert.pem());
    Ok(Throwaway { credentials: Credentials::from_pem(chain.into_bytes(), leaf_key.serialize_pem().into_bytes())?, ca_pem: ca_cert.pem() })
}

//! `limner sign` and `limner c2pa-cert`: signed C2PA manifests (Content Credentials) on the
//! images limner made (the library is `limner_c2pa`; every written image is signed when
//! `$LIMNER_C2PA_CERT` and `$LIMNER_C2PA_KEY` are set, see `limner_data::provenance::set_c2pa`).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use limner_c2pa::Credentials;
use limner_data::provenance::{read_xmp, Label, Provenance, SourceType};

/// Reads `$LIMNER_C2PA_CERT` / `$LIMNER_C2PA_KEY` once at start: with both set, every image this
/// run writes is signed.
pub fn init_from_env() -> Result<()> {
    let creds = Credentials::from_env()?;
    limner_data::provenance::set_c2pa(creds);
    Ok(())
}

/// `limner sign`
#[derive(Args)]
pub struct SignArgs {
    /// limner images (PNG, JPEG, GIF) to sign; each is rewritten in place unless --out is given
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// the signing certificate chain (PEM: your certificate first, then its issuers); default $LIMNER_C2PA_CERT
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// its private key (PKCS#8 PEM); default $LIMNER_C2PA_KEY
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// write the signed copy here (one image only)
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn sign(a: SignArgs) -> Result<()> {
    let creds = match (&a.cert, &a.key) {
        (Some(c), Some(k)) => Credentials::from_files(c, k)?,
        (None, None) => Credentials::from_env()?.with_context(|| {
            format!("no certificate: give --cert CHAIN.pem --key KEY.pem, or set ${} and ${} (try one out with `limner c2pa-cert --out DIR`)", limner_c2pa::ENV_CERT, limner_c2pa::ENV_KEY)
        })?,
        _ => bail!("give both --cert and --key"),
    };
    if a.out.is_some() && a.images.len() != 1 {
        bail!("--out takes one image; without it each image is signed in place");
    }
    for img in &a.images {
        let bytes = std::fs::read(img).with_context(|| format!("cannot read {}", img.display()))?;
        let label = read_xmp(&bytes).with_context(|| format!("cannot read the XMP of {}", img.display()))?.map(|x| Label::parse(&x));
        let Some(label) = label.filter(Label::is_limner) else {
            bail!("{} carries no limner label: limner signs only images it made (its claim says how the image was made)", img.display());
        };
        let source = if label.source_code() == Some(SourceType::CompositeWithTrainedAlgorithmicMedia.code()) {
            SourceType::CompositeWithTrainedAlgorithmicMedia
        } else {
            SourceType::TrainedAlgorithmicMedia
        };
        let mut prov = Provenance::new(source).with_creator(label.creator.clone()).with_model_sha256(label.model_sha256.clone());
        prov.recipe = label.recipe.clone();
        if let Some(tool) = &label.software {
            prov.software = tool.clone();
        }
        let mut claim = limner_data::provenance::c2pa_claim(&prov);
        claim.title = img.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let signed = limner_c2pa::sign(&bytes, &claim, &creds).with_context(|| format!("cannot sign {}", img.display()))?;
        let out = a.out.clone().unwrap_or_else(|| img.clone());
        limner_core::fs::write_atomic(&out, &signed).with_context(|| format!("cannot write {}", out.display()))?;
        println!("signed {} ({} bytes of C2PA manifest)", out.display(), signed.len().saturating_sub(bytes.len()));
    }
    Ok(())
}

/// `limner c2pa-cert`
#[derive(Args)]
pub struct CertArgs {
    /// folder for cert.pem (chain), key.pem and ca.pem
    #[arg(long)]
    pub out: PathBuf,
    /// the signer's name in the certificate
    #[arg(long, default_value = "limner user (test certificate)")]
    pub name: String,
}

pub fn cert(a: CertArgs) -> Result<()> {
    let t = limner_c2pa::throwaway(&a.name)?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("cannot create {}", a.out.display()))?;
    let key = a.out.join("key.pem");
    if key.exists() {
        bail!("{} exists: choose another --out (a key is never overwritten)", key.display());
    }
    limner_core::fs::write_atomic(&a.out.join("cert.pem"), &t.credentials.cert_chain_pem)?;
    limner_core::fs::write_atomic(&key, &t.credentials.private_key_pem)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
    }
    limner_core::fs::write_atomic(&a.out.join("ca.pem"), t.ca_pem.as_bytes())?;
    println!("a THROW-AWAY test certificate (trusted by nobody; for trying C2PA signing out):");
    println!("  {}/cert.pem  signing certificate + its test CA", a.out.display());
    println!("  {}/key.pem   private key (mode 600)", a.out.display());
    println!("  {}/ca.pem    the test CA: `limner inspect --trust ca.pem` reads your images as trusted", a.out.display());
    println!("sign every image limner writes: export {}={}/cert.pem {}={}/key.pem", limner_c2pa::ENV_CERT, a.out.display(), limner_c2pa::ENV_KEY, a.out.display());
    Ok(())
}

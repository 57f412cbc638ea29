//! Redraws `histograms.png` and `report.md` of a report folder from its `report.json` (after a
//! change to the drawing or the wording; the measurements stay as they were).
//!
//! `cargo run --release -p limner-audit --example redraw -- REPORT_DIR`

fn main() -> anyhow::Result<()> {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).ok_or_else(|| anyhow::anyhow!("usage: redraw REPORT_DIR"))?);
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("report.json"))?)?;
    let command = json["command"].as_str().unwrap_or_default().to_string();
    let r: limner_audit::AuditResult = serde_json::from_value(json)?;
    let (w, h, rgb) = limner_audit::report::histograms_png(&r);
    limner_data::imageio::save_png_rgb(&dir.join("histograms.png"), w, h, &rgb)?;
    limner_core::write_atomic(&dir.join("report.md"), limner_audit::report::markdown(&r, &command).as_bytes())?;
    Ok(())
}

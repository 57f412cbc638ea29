//! The page: one HTML/JS/CSS app embedded in the binary (no build step, nothing from the network).

pub const INDEX_HTML: &str = include_str!("assets/index.html");
pub const APP_JS: &str = include_str!("assets/app.js");
pub const APP_CSS: &str = include_str!("assets/app.css");

//! The page served at `/`: its files are embedded in the binary (nothing is fetched at run
//! time), RDKit's JavaScript/WebAssembly build included for drawing molecules.

/// The embedded files: name, contents, MIME type.
const FILES: &[(&str, &[u8], &str)] = &[
    (
        "index.html",
        include_bytes!("web/index.html"),
        "text/html; charset=utf-8",
    ),
    (
        "app.js",
        include_bytes!("web/app.js"),
        "text/javascript; charset=utf-8",
    ),
    (
        "style.css",
        include_bytes!("web/style.css"),
        "text/css; charset=utf-8",
    ),
    (
        "RDKit_minimal.js",
        include_bytes!("web/vendor/RDKit_minimal.js"),
        "text/javascript; charset=utf-8",
    ),
    // `application/wasm` lets the browser compile it while it downloads.
    (
        "RDKit_minimal.wasm",
        include_bytes!("web/vendor/RDKit_minimal.wasm"),
        "application/wasm",
    ),
    (
        "RDKit_LICENSE.txt",
        include_bytes!("web/vendor/RDKit_LICENSE.txt"),
        "text/plain; charset=utf-8",
    ),
];

/// An embedded file by name, with its MIME type.
pub fn file(name: &str) -> Option<(&'static [u8], &'static str)> {
    FILES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|&(_, bytes, mime)| (bytes, mime))
}

//! The report in a real browser: Debian's `chromium`, headless. A page is judged by its
//! console (Chromium logs console messages and uncaught errors as `CONSOLE` lines with
//! `--enable-logging=stderr`), its screenshot (decoded here, counted by colour) and its
//! DOM after loading. Each judgement is first tried on a control page that must fail it,
//! so a check that silently stopped working would be noticed.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The browser, or `None` (with a notice) when it is not installed and not required.
pub fn find() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .flat_map(|d| [d.join("chromium"), d.join("chromium-browser")])
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("MASCLET_REQUIRE_CHROMIUM").as_deref() != Ok("1"),
            "MASCLET_REQUIRE_CHROMIUM=1 but no chromium on PATH"
        );
        eprintln!(
            "skipped: chromium is not installed (MASCLET_REQUIRE_CHROMIUM=1 makes this fail)"
        );
    }
    found
}

/// Load `page` headless: its screenshot's pixels, its console lines and its DOM.
fn load(chromium: &Path, page: &Path, shots: &Path) -> (Pixels, Vec<String>, String) {
    std::fs::create_dir_all(shots).unwrap();
    let png = shots.join(format!(
        "{}.png",
        page.file_name().unwrap().to_string_lossy()
    ));
    let url = format!("file://{}", page.display());
    let base = |c: &mut Command| {
        c.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1200,1600",
        ])
        // Its own profile: no state shared with another run or a user's browser.
        .arg(format!(
            "--user-data-dir={}",
            shots.join("profile").display()
        ));
    };
    let mut shot = Command::new(chromium);
    base(&mut shot);
    let o = shot
        .args(["--enable-logging=stderr", "--v=0"])
        .arg(format!("--screenshot={}", png.display()))
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let console = String::from_utf8_lossy(&o.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE") && l.contains(&url))
        .map(str::to_owned)
        .collect();
    let mut dump = Command::new(chromium);
    base(&mut dump);
    let o = dump.arg("--dump-dom").arg(&url).output().unwrap();
    assert!(o.status.success());
    (
        decode(&std::fs::read(&png).unwrap()),
        console,
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

/// Check the report at `page`, after checking the checks on two control pages.
pub fn check_page(chromium: &Path, page: &Path, shots: &Path) {
    let dir = page.parent().unwrap();
    let noisy = dir.join("noisy.html");
    std::fs::write(
        &noisy,
        "<!DOCTYPE html><p>x</p><script>console.error('bad'); nope();</script>",
    )
    .unwrap();
    let (_, console, _) = load(chromium, &noisy, shots);
    assert!(
        console.len() >= 2,
        "the console check sees nothing: {console:?}"
    );
    let blank = dir.join("blank.html");
    std::fs::write(&blank, "<!DOCTYPE html><html><body></body></html>").unwrap();
    let (px, _, _) = load(chromium, &blank, shots);
    assert!(
        px.looks_blank(),
        "a blank page is not seen as blank: {px:?}"
    );

    let (px, console, dom) = load(chromium, page, shots);
    assert!(console.is_empty(), "console messages: {console:#?}");
    assert!(
        !px.looks_blank(),
        "the report's screenshot is blank: {px:?}"
    );
    assert_eq!(
        dom.matches("<svg").count(),
        4,
        "the charts are not in the DOM"
    );
    assert!(dom.contains("Last runs"));
}

/// What a screenshot holds, in the two numbers that tell a page from an empty one.
#[derive(Debug)]
struct Pixels {
    colours: usize,
    /// Share of pixels other than the most common one (the background).
    drawn: f64,
}

impl Pixels {
    fn looks_blank(&self) -> bool {
        self.colours < 8 || self.drawn < 0.005
    }
}

/// Decode an 8-bit RGB or RGBA, non-interlaced PNG (what Chromium writes).
fn decode(png: &[u8]) -> Pixels {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let (mut pos, mut idat, mut ihdr) = (8, Vec::new(), Vec::new());
    while pos + 8 <= png.len() {
        let len = be32(&png[pos..]);
        let kind = &png[pos + 4..pos + 8];
        let body = &png[pos + 8..pos + 8 + len];
        match kind {
            b"IHDR" => ihdr = body.to_vec(),
            b"IDAT" => idat.extend_from_slice(body),
            _ => {}
        }
        pos += 12 + len;
    }
    let width = be32(&ihdr[0..]);
    let height = be32(&ihdr[4..]);
    assert_eq!((ihdr[8], ihdr[12]), (8, 0), "not 8-bit non-interlaced");
    let bpp = match ihdr[9] {
        2 => 3,
        6 => 4,
        t => panic!("PNG colour type {t}"),
    };
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::ZlibDecoder::new(&idat[..]), &mut raw).unwrap();
    let stride = width * bpp;
    assert_eq!(raw.len(), height * (stride + 1), "truncated image data");
    let mut prev = vec![0u8; stride];
    let mut counts = std::collections::HashMap::<&[u8], usize>::new();
    let mut rows = Vec::with_capacity(height);
    for y in 0..height {
        let line = &raw[y * (stride + 1)..(y + 1) * (stride + 1)];
        let mut cur = line[1..].to_vec();
        for i in 0..stride {
            let a = if i >= bpp { cur[i - bpp] } else { 0 };
            let (b, c) = (prev[i], if i >= bpp { prev[i - bpp] } else { 0 });
            cur[i] = cur[i].wrapping_add(match line[0] {
                0 => 0,
                1 => a,
                2 => b,
                3 => ((u16::from(a) + u16::from(b)) / 2) as u8,
                4 => paeth(a, b, c),
                f => panic!("PNG filter {f}"),
            });
        }
        prev.clone_from(&cur);
        rows.push(cur);
    }
    for row in &rows {
        for px in row.chunks(bpp) {
            *counts.entry(px).or_default() += 1;
        }
    }
    let colours: HashSet<&[u8]> = counts.keys().copied().collect();
    let background = counts.values().max().copied().unwrap_or(0);
    Pixels {
        colours: colours.len(),
        drawn: 1.0 - background as f64 / (width * height) as f64,
    }
}

#[expect(
    clippy::big_endian_bytes,
    reason = "PNG stores its integers big-endian"
)]
fn be32(b: &[u8]) -> usize {
    u32::from_be_bytes(b[..4].try_into().unwrap()) as usize
}

fn paeth(a: u8, b: u8, c: u8) -> u8 {
    let p = i16::from(a) + i16::from(b) - i16::from(c);
    let (pa, pb, pc) = (
        (p - i16::from(a)).abs(),
        (p - i16::from(b)).abs(),
        (p - i16::from(c)).abs(),
    );
    if pa <= pb && pa <= pc {
        a
    } else if pb <= pc {
        b
    } else {
        c
    }
}

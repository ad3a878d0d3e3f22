//! Previews of image fields: a contact sheet (a grid of frames labelled with their step, over
//! strip plots of reward and action) and an animated GIF. The drawing and encoding functions
//! are pure (frames in, RGBA pixels or encoded bytes out); [`EpisodeFrames`] reads what they
//! need from a snapshot, for any codec.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use trajstore::preview::{EpisodeFrames, MAX_SHEET_TILES, contact_sheet};
//! let store = trajstore::Store::open_read_only("demos")?;
//! let snapshot = store.snapshot()?;
//! let episode = snapshot.episode(trajstore::EpisodeId(1))?;
//! // Every 4th frame of the first image observation, at most MAX_SHEET_TILES of them.
//! let frames = EpisodeFrames::read(&snapshot, &episode, None, 4, MAX_SHEET_TILES)?;
//! let series = frames.series(&snapshot, &episode)?;              // reward and action
//! let sheet = contact_sheet(&frames.shape, &frames.pixels, &frames.steps, &series);
//! std::fs::write("sheet.png", sheet.to_png()?)?;
//! # Ok(())
//! # }
//! ```

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::read::{Episode, Field, Snapshot};
use crate::schema::{FieldKind, FieldSpec, Schema};

/// At most this many frames go on one contact sheet; more are thinned evenly.
pub const MAX_SHEET_TILES: usize = 256;
/// At most this many frames go in one GIF; more are thinned evenly.
pub const MAX_GIF_FRAMES: usize = 2000;

/// Frames narrower than this are scaled up (by a whole factor) on sheets and GIFs, so the
/// step labels stay readable.
const MIN_TILE_WIDTH: usize = 96;

/// The layout of one frame of an image field: u8, `[H, W]` or `[H, W, C]` with C 1, 3 or 4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageShape {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
}

impl ImageShape {
    /// The image layout of a field, or `None` when the field is not an image.
    pub fn of(spec: &FieldSpec) -> Option<ImageShape> {
        if spec.dtype != DType::U8 {
            return None;
        }
        let (height, width, channels) = match spec.shape_usize()[..] {
            [h, w] => (h, w, 1),
            [h, w, c] if matches!(c, 1 | 3 | 4) => (h, w, c),
            _ => return None,
        };
        (height > 0 && width > 0 && width <= 8192 && height <= 8192).then_some(ImageShape {
            height,
            width,
            channels,
        })
    }

    /// Bytes of one frame.
    pub fn frame_bytes(&self) -> usize {
        self.height * self.width * self.channels
    }
}

/// The names of a schema's image fields, observations first.
pub fn image_fields(schema: &Schema) -> Vec<String> {
    let mut fields: Vec<&FieldSpec> = schema
        .fields()
        .iter()
        .filter(|f| ImageShape::of(f).is_some())
        .collect();
    fields.sort_by_key(|f| f.kind != FieldKind::Observation);
    fields.into_iter().map(|f| f.name.clone()).collect()
}

/// The image layout of `name` in `schema`, or an error that names the field, its dtype and
/// shape, and the fields that are images.
pub fn image_shape(schema: &Schema, name: &str) -> Result<ImageShape> {
    let Some(spec) = schema.field(name) else {
        return Err(Error::invalid_request(
            "preview field",
            format!("unknown field {name:?} (fields: {})", schema.field_names()),
        ));
    };
    ImageShape::of(spec).ok_or_else(|| {
        let images = image_fields(schema);
        Error::invalid_request(
            "preview field",
            format!(
                "{name:?}: is {}{:?}, not an image (u8 HxW, or HxWxC with C = 1, 3 or 4); image fields: {}",
                spec.dtype.name(),
                spec.shape,
                if images.is_empty() {
                    "none".to_owned()
                } else {
                    images.join(", ")
                }
            ),
        )
    })
}

/// An RGBA image, row-major, 4 bytes a pixel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rgba {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

impl Rgba {
    /// An image filled with one colour.
    pub fn new(width: usize, height: usize, fill: [u8; 4]) -> Rgba {
        Rgba {
            width,
            height,
            pixels: fill.repeat(width * height),
        }
    }

    /// One frame of `shape` (gray, RGB or RGBA bytes) as RGBA, scaled up `scale` times.
    pub fn from_frame(shape: &ImageShape, frame: &[u8], scale: usize) -> Rgba {
        let scale = scale.max(1);
        let mut out = Rgba::new(shape.width * scale, shape.height * scale, [0, 0, 0, 255]);
        for y in 0..out.height {
            for x in 0..out.width {
                let i = ((y / scale) * shape.width + x / scale) * shape.channels;
                let px = match shape.channels {
                    1 => [frame[i], frame[i], frame[i], 255],
                    3 => [frame[i], frame[i + 1], frame[i + 2], 255],
                    _ => [frame[i], frame[i + 1], frame[i + 2], frame[i + 3]],
                };
                out.put(x as i64, y as i64, px);
            }
        }
        out
    }

    /// The pixel at (x, y).
    pub fn get(&self, x: usize, y: usize) -> [u8; 4] {
        let i = (y * self.width + x) * 4;
        self.pixels[i..i + 4].try_into().expect("4 bytes")
    }

    fn put(&mut self, x: i64, y: i64, px: [u8; 4]) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            let i = (y as usize * self.width + x as usize) * 4;
            self.pixels[i..i + 4].copy_from_slice(&px);
        }
    }

    fn fill_rect(&mut self, x: i64, y: i64, w: usize, h: usize, px: [u8; 4]) {
        for dy in 0..h as i64 {
            for dx in 0..w as i64 {
                self.put(x + dx, y + dy, px);
            }
        }
    }

    fn blit(&mut self, src: &Rgba, x: usize, y: usize) {
        for row in 0..src.height.min(self.height.saturating_sub(y)) {
            let n = src.width.min(self.width.saturating_sub(x)) * 4;
            let d = ((y + row) * self.width + x) * 4;
            let s = row * src.width * 4;
            self.pixels[d..d + n].copy_from_slice(&src.pixels[s..s + n]);
        }
    }

    /// Draws `text` with the built-in 3x5 font (digits, A-Z, a few signs), each font pixel
    /// `size` pixels wide, on a dark box so it reads over any frame.
    pub fn label(&mut self, x: usize, y: usize, text: &str, size: usize, colour: [u8; 4]) {
        let (w, h) = text_size(text, size);
        self.fill_rect(x as i64, y as i64, w, h, [0, 0, 0, 255]);
        self.text(x + size, y + size, text, size, colour);
    }

    fn text(&mut self, x: usize, y: usize, text: &str, size: usize, colour: [u8; 4]) {
        for (k, ch) in text.chars().enumerate() {
            let rows = glyph(ch);
            for (r, row) in rows.iter().enumerate() {
                for (c, bit) in row.bytes().enumerate() {
                    if bit == b'#' {
                        self.fill_rect(
                            (x + (k * 4 + c) * size) as i64,
                            (y + r * size) as i64,
                            size,
                            size,
                            colour,
                        );
                    }
                }
            }
        }
    }

    fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), px: [u8; 4]) {
        let n = (x1 - x0).abs().max((y1 - y0).abs()).max(1);
        for i in 0..=n {
            self.put(x0 + (x1 - x0) * i / n, y0 + (y1 - y0) * i / n, px);
        }
    }

    /// PNG bytes (8-bit RGBA).
    pub fn to_png(&self) -> Result<Vec<u8>> {
        encode_png(&self.pixels, self.width, self.height, 4)
    }
}

/// Pixel size (with the box margin) of `text` drawn by [`Rgba::label`].
fn text_size(text: &str, size: usize) -> (usize, usize) {
    let n = text.chars().count();
    ((n * 4 + 1) * size, 7 * size)
}

/// Encodes 8-bit pixels (1 = gray, 2 = gray+alpha, 3 = RGB, 4 = RGBA channels) as a PNG.
pub fn encode_png(pixels: &[u8], width: usize, height: usize, channels: usize) -> Result<Vec<u8>> {
    let colour = match channels {
        1 => png::ColorType::Grayscale,
        2 => png::ColorType::GrayscaleAlpha,
        3 => png::ColorType::Rgb,
        4 => png::ColorType::Rgba,
        _ => return Err(invalid("png", format!("{channels} channels"))),
    };
    if pixels.len() != width * height * channels || width == 0 || height == 0 {
        return Err(invalid(
            "png",
            format!("{} bytes for {width}x{height}x{channels}", pixels.len()),
        ));
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width as u32, height as u32);
    encoder.set_color(colour);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder
        .write_header()
        .map_err(|e| invalid("png", e.to_string()))?;
    writer
        .write_image_data(pixels)
        .map_err(|e| invalid("png", e.to_string()))?;
    writer.finish().map_err(|e| invalid("png", e.to_string()))?;
    Ok(out)
}

/// One frame of an image field as a PNG of its own channels (no scaling, no label).
pub fn frame_png(shape: &ImageShape, frame: &[u8]) -> Result<Vec<u8>> {
    encode_png(frame, shape.width, shape.height, shape.channels)
}

fn invalid(what: &str, reason: String) -> Error {
    Error::invalid_request("preview", format!("{what}: {reason}"))
}

/// A named numeric series over an episode's steps, drawn as a strip plot under a sheet.
/// `values` holds `components` values per step (an action of shape `[2]` has two).
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    pub components: usize,
    pub values: Vec<f64>,
}

impl Series {
    /// Steps in the series.
    pub fn len(&self) -> usize {
        self.values.len() / self.components.max(1)
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// Every value of a numeric field as f64, `components` per step (bool as 0/1).
pub fn numeric_series(field: &Field) -> Result<Series> {
    let spec = field.spec();
    let bytes = field.to_vec()?;
    let size = spec.dtype.size();
    let values = bytes
        .chunks_exact(size)
        .map(|b| match spec.dtype {
            DType::Bool | DType::U8 => f64::from(b[0]),
            DType::I8 => f64::from(b[0] as i8),
            DType::U16 => f64::from(u16::from_le_bytes([b[0], b[1]])),
            DType::I16 => f64::from(i16::from_le_bytes([b[0], b[1]])),
            DType::F16 => f64::from(half::f16::from_le_bytes([b[0], b[1]])),
            DType::U32 => f64::from(u32::from_le_bytes(b.try_into().expect("4"))),
            DType::I32 => f64::from(i32::from_le_bytes(b.try_into().expect("4"))),
            DType::F32 => f64::from(f32::from_le_bytes(b.try_into().expect("4"))),
            DType::U64 => u64::from_le_bytes(b.try_into().expect("8")) as f64,
            DType::I64 => i64::from_le_bytes(b.try_into().expect("8")) as f64,
            DType::F64 => f64::from_le_bytes(b.try_into().expect("8")),
        })
        .collect();
    Ok(Series {
        name: spec.name.clone(),
        components: spec.shape.iter().map(|&d| d as usize).product::<usize>(),
        values,
    })
}

/// Whole factor that brings a frame `width` wide up to `MIN_TILE_WIDTH` (at most 8).
pub fn tile_scale(width: usize) -> usize {
    MIN_TILE_WIDTH.div_ceil(width.max(1)).clamp(1, 8)
}

/// Steps `0, every, 2 * every, ...` below `len`, thinned evenly to at most `max`.
pub fn pick_steps(len: usize, every: usize, max: usize) -> Vec<usize> {
    let steps: Vec<usize> = (0..len).step_by(every.max(1)).collect();
    if steps.len() <= max || max == 0 {
        return steps;
    }
    (0..max).map(|i| steps[i * steps.len() / max]).collect()
}

const BACKGROUND: [u8; 4] = [24, 24, 28, 255];
const LABEL: [u8; 4] = [255, 255, 0, 255];
const PLOT_COLOURS: [[u8; 4]; 4] = [
    [90, 200, 120, 255],
    [250, 160, 60, 255],
    [90, 160, 250, 255],
    [230, 90, 200, 255],
];
const PLOT_HEIGHT: usize = 64;

/// A contact sheet: `frames` (one per entry of `steps`, back to back) in a grid, each
/// labelled with its step number, over one strip plot per series (each over the whole
/// episode, with its name and range).
pub fn contact_sheet(
    shape: &ImageShape,
    frames: &[u8],
    steps: &[usize],
    series: &[Series],
) -> Rgba {
    let scale = tile_scale(shape.width);
    let (tw, th) = (shape.width * scale, shape.height * scale);
    let gap = 4;
    let count = steps.len().max(1);
    let columns = ((count as f64).sqrt().ceil() as usize)
        .max(1)
        .min(1600 / (tw + gap).max(1))
        .max(1);
    let rows = count.div_ceil(columns);
    let width = (columns * (tw + gap) + gap).max(160);
    let grid_height = rows * (th + gap) + gap;
    let plots: Vec<&Series> = series.iter().filter(|s| !s.is_empty()).collect();
    let height = grid_height + plots.len() * (PLOT_HEIGHT + gap);
    let mut sheet = Rgba::new(width, height, BACKGROUND);
    let label_size = if tw >= 96 { 2 } else { 1 };
    for (k, &step) in steps.iter().enumerate() {
        let Some(frame) = frames.chunks_exact(shape.frame_bytes()).nth(k) else {
            break;
        };
        let x = gap + (k % columns) * (tw + gap);
        let y = gap + (k / columns) * (th + gap);
        sheet.blit(&Rgba::from_frame(shape, frame, scale), x, y);
        sheet.label(x, y, &step.to_string(), label_size, LABEL);
    }
    for (i, s) in plots.iter().enumerate() {
        let y = grid_height + i * (PLOT_HEIGHT + gap);
        strip_plot(&mut sheet, s, i, (gap, y), (width - 2 * gap, PLOT_HEIGHT));
    }
    sheet
}

/// Draws `series` (every component, one colour each, from colour `first`) into the box at
/// (x, y) of size (w, h).
fn strip_plot(
    img: &mut Rgba,
    series: &Series,
    first: usize,
    (x, y): (usize, usize),
    (w, h): (usize, usize),
) {
    img.fill_rect(x as i64, y as i64, w, h, [40, 40, 48, 255]);
    let finite = series.values.iter().copied().filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let (lo, hi) = if lo > hi { (0.0, 1.0) } else { (lo, hi) };
    let span = if hi > lo { hi - lo } else { 1.0 };
    let (top, bottom) = (y as f64 + 14.0, (y + h) as f64 - 3.0);
    let ypx = |v: f64| (bottom - (v - lo) / span * (bottom - top)).round() as i64;
    if lo < 0.0 && hi > 0.0 {
        let z = ypx(0.0);
        img.line((x as i64, z), ((x + w) as i64, z), [80, 80, 90, 255]);
    }
    let n = series.len();
    let c = series.components.max(1);
    let xpx = |t: usize| (x as f64 + t as f64 * (w - 1) as f64 / (n.max(2) - 1) as f64) as i64;
    for comp in 0..c.min(PLOT_COLOURS.len()) {
        let colour = PLOT_COLOURS[(first + comp) % PLOT_COLOURS.len()];
        let mut last = None;
        for t in 0..n {
            let v = series.values[t * c + comp];
            if !v.is_finite() {
                last = None;
                continue;
            }
            let p = (xpx(t), ypx(v));
            img.line(last.unwrap_or(p), p, colour);
            last = Some(p);
        }
    }
    let title = format!("{} {}..{}", series.name, short(lo), short(hi));
    img.text(x + 3, y + 3, &title, 1, [220, 220, 220, 255]);
}

/// A number in at most a few characters.
fn short(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e9 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// An animated GIF of `frames` (one per entry of `steps`, back to back, each labelled with
/// its step), looping forever,
/// `delay_cs` hundredths of a second per frame. Frames with more than 256 colours are
/// quantized (NeuQuant); others keep their exact colours.
pub fn gif(shape: &ImageShape, frames: &[u8], steps: &[usize], delay_cs: u16) -> Result<Vec<u8>> {
    let scale = tile_scale(shape.width);
    let (w, h) = (shape.width * scale, shape.height * scale);
    if w > u16::MAX as usize || h > u16::MAX as usize {
        return Err(invalid("gif", format!("{w}x{h} is too large for a GIF")));
    }
    let err = |e: gif::EncodingError| invalid("gif", e.to_string());
    let mut out = Vec::new();
    {
        let mut encoder = gif::Encoder::new(&mut out, w as u16, h as u16, &[]).map_err(err)?;
        encoder.set_repeat(gif::Repeat::Infinite).map_err(err)?;
        let label_size = if w >= 96 { 2 } else { 1 };
        for (&step, frame) in steps.iter().zip(frames.chunks_exact(shape.frame_bytes())) {
            let mut img = Rgba::from_frame(shape, frame, scale);
            img.label(0, 0, &step.to_string(), label_size, LABEL);
            let mut f = gif::Frame::from_rgba_speed(w as u16, h as u16, &mut img.pixels, 10);
            f.delay = delay_cs;
            encoder.write_frame(&f).map_err(err)?;
        }
    }
    Ok(out)
}

/// Some frames of one image field of one episode, decoded (any codec), back to back: only
/// the steps asked for are read, so memory stays bounded on long episodes.
pub struct EpisodeFrames {
    pub field: String,
    pub shape: ImageShape,
    /// Frames in the field (`T + 1` for an observation).
    pub len: usize,
    /// The steps read, in order.
    pub steps: Vec<usize>,
    /// `steps.len()` frames of `shape.frame_bytes()` bytes each.
    pub pixels: Vec<u8>,
}

impl EpisodeFrames {
    /// Reads every `every`th frame (at most `max`, thinned evenly) of `field` (or, when
    /// `None`, the first image observation field) of `episode`.
    pub fn read(
        snapshot: &Snapshot,
        episode: &Episode,
        field: Option<&str>,
        every: usize,
        max: usize,
    ) -> Result<EpisodeFrames> {
        let schema = snapshot.schema(episode.schema_id())?;
        let name = match field {
            Some(name) => name.to_owned(),
            None => image_fields(&schema)
                .into_iter()
                .next()
                .ok_or_else(|| {
                    Error::invalid_request(
                        "preview",
                        format!(
                            "episode {} has no image field (u8 HxW, or HxWxC with C = 1, 3 or 4); fields: {}",
                            episode.id(),
                            schema.field_names()
                        ),
                    )
                })?,
        };
        let shape = image_shape(&schema, &name)?;
        let data = snapshot.field(episode, &name)?;
        let steps = pick_steps(data.len(), every, max);
        let n = shape.frame_bytes();
        let mut pixels = vec![0u8; steps.len() * n];
        for (&step, out) in steps.iter().zip(pixels.chunks_exact_mut(n)) {
            data.read_into(step..step + 1, out)?;
        }
        Ok(EpisodeFrames {
            field: name,
            shape,
            len: data.len(),
            steps,
            pixels,
        })
    }

    /// The contact sheet of the frames read, over `series`.
    pub fn sheet(&self, series: &[Series]) -> Rgba {
        contact_sheet(&self.shape, &self.pixels, &self.steps, series)
    }

    /// The GIF of the frames read.
    pub fn gif(&self, delay_cs: u16) -> Result<Vec<u8>> {
        gif(&self.shape, &self.pixels, &self.steps, delay_cs)
    }

    /// The strip plots of a sheet: `reward` and `action` when the episode has them (numeric).
    pub fn series(&self, snapshot: &Snapshot, episode: &Episode) -> Result<Vec<Series>> {
        let schema = snapshot.schema(episode.schema_id())?;
        let mut out = Vec::new();
        for name in [crate::schema::REWARD, "action"] {
            if schema.field(name).is_some() {
                out.push(numeric_series(&snapshot.field(episode, name)?)?);
            }
        }
        Ok(out)
    }
}

/// The 3x5 glyph of `ch` (`#` = ink); unknown characters draw as a box.
fn glyph(ch: char) -> [&'static str; 5] {
    match ch.to_ascii_uppercase() {
        '0' => ["###", "#.#", "#.#", "#.#", "###"],
        '1' => [".#.", "##.", ".#.", ".#.", "###"],
        '2' => ["###", "..#", "###", "#..", "###"],
        '3' => ["###", "..#", ".##", "..#", "###"],
        '4' => ["#.#", "#.#", "###", "..#", "..#"],
        '5' => ["###", "#..", "###", "..#", "###"],
        '6' => ["###", "#..", "###", "#.#", "###"],
        '7' => ["###", "..#", ".#.", ".#.", ".#."],
        '8' => ["###", "#.#", "###", "#.#", "###"],
        '9' => ["###", "#.#", "###", "..#", "###"],
        'A' => [".#.", "#.#", "###", "#.#", "#.#"],
        'B' => ["##.", "#.#", "##.", "#.#", "##."],
        'C' => [".##", "#..", "#..", "#..", ".##"],
        'D' => ["##.", "#.#", "#.#", "#.#", "##."],
        'E' => ["###", "#..", "##.", "#..", "###"],
        'F' => ["###", "#..", "##.", "#..", "#.."],
        'G' => [".##", "#..", "#.#", "#.#", ".##"],
        'H' => ["#.#", "#.#", "###", "#.#", "#.#"],
        'I' => ["###", ".#.", ".#.", ".#.", "###"],
        'J' => ["..#", "..#", "..#", "#.#", ".#."],
        'K' => ["#.#", "#.#", "##.", "#.#", "#.#"],
        'L' => ["#..", "#..", "#..", "#..", "###"],
        'M' => ["#.#", "###", "###", "#.#", "#.#"],
        'N' => ["##.", "#.#", "#.#", "#.#", "#.#"],
        'O' => [".#.", "#.#", "#.#", "#.#", ".#."],
        'P' => ["##.", "#.#", "##.", "#..", "#.."],
        'Q' => [".#.", "#.#", "#.#", "##.", ".##"],
        'R' => ["##.", "#.#", "##.", "#.#", "#.#"],
        'S' => [".##", "#..", ".#.", "..#", "##."],
        'T' => ["###", ".#.", ".#.", ".#.", ".#."],
        'U' => ["#.#", "#.#", "#.#", "#.#", "###"],
        'V' => ["#.#", "#.#", "#.#", "#.#", ".#."],
        'W' => ["#.#", "#.#", "###", "###", "#.#"],
        'X' => ["#.#", "#.#", ".#.", "#.#", "#.#"],
        'Y' => ["#.#", "#.#", ".#.", ".#.", ".#."],
        'Z' => ["###", "..#", ".#.", "#..", "###"],
        '-' => ["...", "...", "###", "...", "..."],
        '.' => ["...", "...", "...", "...", ".#."],
        '/' => ["..#", "..#", ".#.", "#..", "#.."],
        '_' => ["...", "...", "...", "...", "###"],
        ':' => ["...", ".#.", "...", ".#.", "..."],
        ' ' => ["...", "...", "...", "...", "..."],
        _ => ["###", "#.#", "#.#", "#.#", "###"],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(h: usize, w: usize, c: usize) -> ImageShape {
        ImageShape {
            height: h,
            width: w,
            channels: c,
        }
    }

    /// `n` frames with a few distinct colours each (a gradient of 8 levels per channel).
    fn frames(s: &ImageShape, n: usize) -> Vec<u8> {
        (0..n * s.frame_bytes())
            .map(|i| {
                let (f, p) = (i / s.frame_bytes(), i % s.frame_bytes());
                ((f * 40 + (p / s.channels % s.width) / 4 * 32 + p % s.channels * 50) % 256) as u8
            })
            .collect()
    }

    /// The frames of `steps` out of `all`, back to back.
    fn select(s: &ImageShape, all: &[u8], steps: &[usize]) -> Vec<u8> {
        steps
            .iter()
            .flat_map(|&t| all[t * s.frame_bytes()..(t + 1) * s.frame_bytes()].to_vec())
            .collect()
    }

    fn decode_png(bytes: &[u8]) -> (png::OutputInfo, Vec<u8>) {
        let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
            .read_info()
            .unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        (info, buf)
    }

    #[test]
    fn image_shapes_are_u8_hw_or_hwc() {
        let spec = |dtype, shape: &[u32]| FieldSpec {
            name: "f".into(),
            dtype,
            shape: shape.to_vec(),
            kind: FieldKind::Observation,
            codec: crate::Codec::Raw,
        };
        assert_eq!(
            ImageShape::of(&spec(DType::U8, &[4, 5])),
            Some(shape(4, 5, 1))
        );
        for c in [1, 3, 4] {
            assert_eq!(
                ImageShape::of(&spec(DType::U8, &[4, 5, c])),
                Some(shape(4, 5, c as usize))
            );
        }
        assert_eq!(ImageShape::of(&spec(DType::U8, &[4, 5, 2])), None);
        assert_eq!(ImageShape::of(&spec(DType::U8, &[4])), None);
        assert_eq!(ImageShape::of(&spec(DType::F32, &[4, 5, 3])), None);
        assert_eq!(ImageShape::of(&spec(DType::U8, &[0, 5, 3])), None);
    }

    #[test]
    fn frame_png_decodes_to_the_same_pixels() {
        for c in [1, 3, 4] {
            let s = shape(6, 10, c);
            let f = frames(&s, 1);
            let (info, pixels) = decode_png(&frame_png(&s, &f).unwrap());
            assert_eq!((info.width, info.height), (10, 6));
            assert_eq!(pixels, f, "{c} channels");
        }
    }

    #[test]
    fn contact_sheet_holds_the_frames_and_their_step_labels() {
        let s = shape(16, 16, 3);
        let all = frames(&s, 10);
        let steps = pick_steps(10, 3, MAX_SHEET_TILES);
        assert_eq!(steps, vec![0, 3, 6, 9]);
        let reward = Series {
            name: "reward".into(),
            components: 1,
            values: (0..9).map(|t| t as f64 - 3.0).collect(),
        };
        let sheet = contact_sheet(&s, &select(&s, &all, &steps), &steps, &[reward]);
        let (info, pixels) = decode_png(&sheet.to_png().unwrap());
        assert_eq!(
            (info.width as usize, info.height as usize),
            (sheet.width, sheet.height)
        );
        assert_eq!(pixels, sheet.pixels);

        let scale = tile_scale(16);
        assert_eq!(scale, 6);
        let (tw, gap) = (16 * scale, 4);
        // 4 tiles: 2 x 2. Tile k at (gap + col * (tw + gap), gap + row * (tw + gap)).
        for (k, &step) in steps.iter().enumerate() {
            let (x0, y0) = (gap + (k % 2) * (tw + gap), gap + (k / 2) * (tw + gap));
            // Bottom-right corner, away from the label: the frame's own pixel.
            let (fx, fy) = (15, 15);
            let i = (step * s.frame_bytes()) + (fy * 16 + fx) * 3;
            let want = [all[i], all[i + 1], all[i + 2], 255];
            assert_eq!(
                sheet.get(x0 + fx * scale, y0 + fy * scale),
                want,
                "step {step}"
            );
            // The label region holds the label colour (the digits are drawn, not blank).
            let (lw, lh) = text_size(&step.to_string(), 2);
            let inked = (y0..y0 + lh)
                .flat_map(|y| (x0..x0 + lw).map(move |x| (x, y)))
                .filter(|&(x, y)| sheet.get(x, y) == LABEL)
                .count();
            assert!(inked >= 7 * 4, "step {step} label has {inked} inked pixels");
        }
        // The strip plot below the grid has the series colour in it.
        let grid_bottom = gap + 2 * (tw + gap);
        let plotted = (grid_bottom..sheet.height)
            .flat_map(|y| (0..sheet.width).map(move |x| (x, y)))
            .filter(|&(x, y)| sheet.get(x, y) == PLOT_COLOURS[0])
            .count();
        assert!(plotted > 50, "{plotted} plotted pixels");
    }

    #[test]
    fn labels_differ_by_digit() {
        let mut a = Rgba::new(40, 20, [0, 0, 0, 255]);
        let mut b = a.clone();
        a.label(0, 0, "12", 1, LABEL);
        b.label(0, 0, "13", 1, LABEL);
        assert_ne!(a, b);
        // Every digit has a distinct glyph.
        let digits: std::collections::HashSet<_> = ('0'..='9').map(glyph).collect();
        assert_eq!(digits.len(), 10);
    }

    #[test]
    fn gif_decodes_back_to_the_frames() {
        for c in [1, 3, 4] {
            let s = shape(24, 32, c);
            let all = frames(&s, 5);
            let steps = [0, 2, 4];
            let bytes = gif(&s, &select(&s, &all, &steps), &steps, 7).unwrap();
            let mut options = gif::DecodeOptions::new();
            options.set_color_output(gif::ColorOutput::RGBA);
            let mut decoder = options.read_info(std::io::Cursor::new(&bytes)).unwrap();
            let scale = tile_scale(32);
            assert_eq!(
                (decoder.width() as usize, decoder.height() as usize),
                (32 * scale, 24 * scale)
            );
            let mut seen = 0;
            while let Some(frame) = decoder.read_next_frame().unwrap() {
                let step = steps[seen];
                assert_eq!(frame.delay, 7);
                let img = Rgba {
                    width: frame.width as usize,
                    height: frame.height as usize,
                    pixels: frame.buffer.to_vec(),
                };
                let want =
                    Rgba::from_frame(&s, &all[step * s.frame_bytes()..][..s.frame_bytes()], scale);
                // Below the label, every pixel is the frame's (few colours: exact palette).
                let from = 7 * 2 + 1;
                for y in from..img.height {
                    for x in 0..img.width {
                        let (g, w) = (img.get(x, y), want.get(x, y));
                        assert_eq!(&g[..3], &w[..3], "{c} channels, step {step}, ({x}, {y})");
                    }
                }
                let inked = (0..from)
                    .flat_map(|y| (0..40).map(move |x| (x, y)))
                    .filter(|&(x, y)| img.get(x, y)[..3] == LABEL[..3])
                    .count();
                assert!(inked > 0, "step {step} label drawn");
                seen += 1;
            }
            assert_eq!(seen, steps.len());
        }
    }

    #[test]
    fn steps_are_thinned_evenly() {
        assert_eq!(pick_steps(5, 1, 10), vec![0, 1, 2, 3, 4]);
        assert_eq!(pick_steps(0, 1, 10), Vec::<usize>::new());
        let many = pick_steps(1000, 1, 100);
        assert_eq!(many.len(), 100);
        assert_eq!(many[0], 0);
        assert!(many.windows(2).all(|w| w[1] - w[0] == 10));
    }
}

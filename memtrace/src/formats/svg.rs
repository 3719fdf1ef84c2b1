//! SVG flame graphs, drawn by inferno from the folded stacks.
//!
//! Frames are colored by module rather than by function, so one library's
//! share of the memory stands out as one hue: each module gets a hue from a
//! hash of its name (the same in every report), code generated at run time
//! is green and code outside any mapping grey.

use std::io::{self, Write};

use inferno::flamegraph::{
    self, Options,
    color::{Color, PaletteMap},
};

use super::{Measure, folded, module_of_name, title};
use crate::report::Report;

/// Color of frames in code generated at run time.
const JIT_COLOR: Color = Color {
    r: 80,
    g: 180,
    b: 90,
};
/// Color of frames outside any mapping.
const UNKNOWN_COLOR: Color = Color {
    r: 150,
    g: 150,
    b: 150,
};

/// Writes an SVG flame graph of `report` weighed by `measure`.
pub fn write(report: &Report, measure: Measure, out: &mut dyn Write) -> io::Result<()> {
    let stacks = folded::stacks(report, measure);
    let mut palette = module_palette(stacks.iter().map(|(stack, _)| stack.as_str()));

    let mut options = Options::default();
    options.title = title(report, measure);
    options.subtitle = Some(format!(
        "traced for {:.1} s; frames are colored by module, named `function [module]`",
        report.duration_s
    ));
    let unit = if measure.is_bytes() {
        "bytes"
    } else {
        "allocations"
    };
    unit.clone_into(&mut options.count_name);
    "Frame:".clone_into(&mut options.name_type);
    options.deterministic = true;
    options.palette_map = Some(&mut palette);

    let lines: Vec<String> = stacks
        .iter()
        .map(|(stack, value)| format!("{stack} {value}"))
        .collect();
    if lines.is_empty() {
        return write_empty(&options.title, measure, out);
    }
    flamegraph::from_lines(&mut options, lines.iter().map(String::as_str), out)
}

/// inferno refuses a profile without stacks; an empty graph still says what it is of.
fn write_empty(title: &str, measure: Measure, out: &mut dyn Write) -> io::Result<()> {
    let escape = |text: &str| {
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    writeln!(
        out,
        "<?xml version=\"1.0\" standalone=\"no\"?>\n\
         <svg version=\"1.1\" width=\"1200\" height=\"80\" xmlns=\"http://www.w3.org/2000/svg\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"#f8f8f8\"/>\n\
         <text x=\"600\" y=\"30\" text-anchor=\"middle\" font-size=\"17\">{}</text>\n\
         <text x=\"600\" y=\"60\" text-anchor=\"middle\" font-size=\"12\">no stack holds any {}</text>\n\
         </svg>",
        escape(title),
        measure.label()
    )
}

/// A palette that gives every frame of the same module the same color.
fn module_palette<'a>(stacks: impl Iterator<Item = &'a str>) -> PaletteMap {
    let mut palette = PaletteMap::default();
    for frame in stacks.flat_map(|stack| stack.split(';')) {
        if palette.get(frame).is_none() {
            palette.insert(frame, module_color(module_of_name(frame).unwrap_or(frame)));
        }
    }
    palette
}

/// The color of a module's frames: fixed for JIT and unknown code, otherwise
/// a warm or cool hue picked by a hash of the module's name.
#[must_use]
pub fn module_color(module: &str) -> Color {
    match module {
        "jit" => return JIT_COLOR,
        "unknown" => return UNKNOWN_COLOR,
        _ => {}
    }
    // FNV-1a: stable across runs and platforms, unlike the standard hasher.
    let hash = module.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    hsl_color((hash % 360) as f64, 0.65, 0.62)
}

/// Converts a hue in degrees, a saturation and a lightness to RGB.
fn hsl_color(hue: f64, saturation: f64, lightness: f64) -> Color {
    let chroma = (1.0 - (2.0 * lightness - 1.0).abs()) * saturation;
    let sector = hue / 60.0;
    let second = chroma * (1.0 - (sector % 2.0 - 1.0).abs());
    let (red, green, blue) = match sector as u32 {
        0 => (chroma, second, 0.0),
        1 => (second, chroma, 0.0),
        2 => (0.0, chroma, second),
        3 => (0.0, second, chroma),
        4 => (second, 0.0, chroma),
        _ => (chroma, 0.0, second),
    };
    let floor = lightness - chroma / 2.0;
    let channel = |value: f64| ((value + floor) * 255.0).round().clamp(0.0, 255.0) as u8;
    Color {
        r: channel(red),
        g: channel(green),
        b: channel(blue),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::fixture;

    #[test]
    fn frames_of_one_module_share_a_color_and_modules_differ() {
        let palette = module_palette(
            [
                "main [server];load_config [libconf.so]",
                "main [server];parse [server]",
            ]
            .into_iter(),
        );
        assert_eq!(palette.get("main [server]"), palette.get("parse [server]"));
        assert_ne!(
            palette.get("main [server]"),
            palette.get("load_config [libconf.so]")
        );
        assert_eq!(module_color("jit"), JIT_COLOR);
    }

    #[test]
    fn the_graph_is_titled_with_the_target_and_the_measure() {
        let mut out = Vec::new();
        write(&fixture::sample(), Measure::AllocCount, &mut out).unwrap();
        let svg = String::from_utf8(out).unwrap();
        assert!(svg.contains("memtrace: allocations of pid 4242"), "{svg}");
        assert!(svg.contains("load_config [libconf.so]"));
        let Color { r, g, b } = module_color("libconf.so");
        assert!(
            svg.contains(&format!("rgb({r},{g},{b})")),
            "module color is used"
        );
    }

    #[test]
    fn an_empty_profile_still_renders() {
        let mut out = Vec::new();
        write(&fixture::report(Vec::new()), Measure::LiveBytes, &mut out).unwrap();
        assert!(
            String::from_utf8(out)
                .unwrap()
                .contains("no stack holds any live bytes")
        );
    }
}

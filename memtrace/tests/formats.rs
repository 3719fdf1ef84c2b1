//! Each report format, read back by a real reader of that format.

mod common;

use std::fs;

use memtrace::formats::{self, Format, Measure};

fn rendered(format: Format, measure: Measure) -> Vec<u8> {
    let mut out = Vec::new();
    formats::render(&common::leak_report(), format, measure, &mut out).expect("renders");
    out
}

/// The folded stacks parse in inferno, which keeps every stack and total.
#[cfg(feature = "flamegraph")]
#[test]
fn folded_stacks_are_read_back_by_inferno_with_the_same_totals() {
    use inferno::collapse::{Collapse as _, recursive};

    let report = common::leak_report();
    for measure in Measure::ALL {
        let folded = String::from_utf8(rendered(Format::Folded, measure)).unwrap();
        let expected: u64 = report.consumers.iter().map(|c| measure.of(c)).sum();
        assert!(expected > 0);

        // inferno's recursion collapser parses folded input and folds it out again.
        let mut refolded = Vec::new();
        recursive::Folder::default()
            .collapse(folded.as_bytes(), &mut refolded)
            .expect("inferno parses the folded stacks");
        let refolded = String::from_utf8(refolded).unwrap();
        let total: u64 = refolded
            .lines()
            .map(|line| {
                line.rsplit_once(' ')
                    .expect("a count")
                    .1
                    .parse::<u64>()
                    .expect("a number")
            })
            .sum();
        assert_eq!(total, expected, "{measure:?}:\n{folded}");
        assert_eq!(refolded.lines().count(), folded.lines().count());

        // The flame graph inferno draws from them counts the same total.
        let mut svg = Vec::new();
        let mut options = inferno::flamegraph::Options::default();
        inferno::flamegraph::from_lines(&mut options, folded.lines(), &mut svg).unwrap();
        let svg = String::from_utf8(svg).unwrap();
        assert!(
            svg.contains(&format!("total_samples=\"{expected}\"")),
            "{measure:?}"
        );
    }
}

/// `protoc` decodes the gunzipped profile with the message layout written
/// out in `fixtures/profile.proto`.
#[cfg(feature = "pprof")]
#[test]
fn pprof_profiles_are_decoded_by_protoc() {
    use std::{io::Read as _, process::Command};

    let protoc = common::require_tool("protoc", "protobuf-compiler");
    let dir = tempfile::tempdir().unwrap();
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&rendered(Format::Pprof, Measure::LiveBytes)[..])
        .read_to_end(&mut raw)
        .expect("the profile is gzip-compressed");
    let raw_path = dir.path().join("profile.pb");
    fs::write(&raw_path, &raw).unwrap();

    let output = Command::new(protoc)
        .arg("--decode=memtrace.test.Profile")
        .arg(format!("--proto_path={}", common::fixtures().display()))
        .arg("profile.proto")
        .stdin(fs::File::open(&raw_path).unwrap())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "protoc failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    let strings: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("string_table: "))
        .map(|s| s.trim_matches('"'))
        .collect();
    assert_eq!(strings[0], "", "the string table starts empty");
    for name in [
        "inuse_space",
        "alloc_objects",
        "make_node",
        "build_cache",
        "big_map",
        "/tmp/leak/leak.c",
    ] {
        assert!(strings.contains(&name), "`{name}` in {strings:?}");
    }
    // The 1 MiB mapping: live bytes, live count, allocated bytes, calls.
    let values: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("value: "))
        .collect();
    assert_eq!(&values[..4], ["1048576", "1", "1048576", "1"], "{text}");
    assert_eq!(
        text.matches("\nmapping {").count(),
        2,
        "the program and libc: {text}"
    );
    assert!(text.contains("has_line_numbers: true"));
}

/// The speedscope file has the schema's fields, and every frame index
/// points into the shared frames.
#[test]
fn speedscope_files_have_the_schema_fields_and_valid_frame_indexes() {
    let file: serde_json::Value =
        serde_json::from_slice(&rendered(Format::Speedscope, Measure::AllocCount)).expect("JSON");
    assert_eq!(
        file["$schema"],
        "https://www.speedscope.app/file-format-schema.json"
    );
    let frames = file["shared"]["frames"].as_array().expect("shared frames");
    assert!(frames.iter().all(|f| f["name"].is_string()));
    let profiles = file["profiles"].as_array().expect("profiles");
    assert_eq!(profiles.len(), 4);
    assert_eq!(file["activeProfileIndex"], 3);
    for profile in profiles {
        assert_eq!(profile["type"], "sampled");
        assert!(["bytes", "none"].contains(&profile["unit"].as_str().unwrap()));
        let samples = profile["samples"].as_array().unwrap();
        let weights = profile["weights"].as_array().unwrap();
        assert_eq!(samples.len(), weights.len());
        let sum: u64 = weights.iter().map(|w| w.as_u64().unwrap()).sum();
        assert_eq!(profile["endValue"].as_u64(), Some(sum));
        for stack in samples {
            for index in stack.as_array().unwrap() {
                assert!(index.as_u64().unwrap() < frames.len() as u64);
            }
        }
    }
    let calls = &profiles[3];
    assert_eq!(
        calls["weights"].as_array().unwrap().len(),
        5,
        "freed allocations count as calls"
    );
}

/// The SVG is well-formed XML and Chromium draws it as a picture, not a blank page.
#[cfg(feature = "flamegraph")]
#[test]
fn svg_flame_graphs_parse_as_xml_and_render_in_chromium() {
    use std::process::Command;

    let svg = rendered(Format::Svg, Measure::LiveBytes);
    let text = String::from_utf8(svg.clone()).unwrap();
    let mut reader = quick_xml::Reader::from_str(&text);
    let mut elements = 0;
    loop {
        match reader.read_event().expect("well-formed XML") {
            quick_xml::events::Event::Eof => break,
            quick_xml::events::Event::Start(_) | quick_xml::events::Event::Empty(_) => {
                elements += 1;
            }
            _ => {}
        }
    }
    assert!(elements > 20, "{elements} elements");
    assert!(text.contains("memtrace: live bytes of pid"));
    assert!(text.contains("make_node [leak]"));

    let chromium = common::require_tool("chromium", "chromium");
    let dir = tempfile::tempdir().unwrap();
    let svg_path = dir.path().join("flame.svg");
    let png_path = dir.path().join("flame.png");
    fs::write(&svg_path, &svg).unwrap();
    let status = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1200,800",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        .arg(format!("--screenshot={}", png_path.display()))
        .arg(format!("file://{}", svg_path.display()))
        .output()
        .unwrap();
    assert!(
        png_path.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&status.stderr)
    );

    let decoder = png::Decoder::new(std::io::BufReader::new(fs::File::open(&png_path).unwrap()));
    let mut image = decoder.read_info().expect("a PNG");
    let mut pixels = vec![0; image.output_buffer_size().expect("a size")];
    let info = image.next_frame(&mut pixels).expect("a frame");
    let pixels = &pixels[..info.buffer_size()];
    let channels = info.color_type.samples();
    let first = &pixels[..channels];
    let differing = pixels.chunks(channels).filter(|p| p != &first).count();
    assert!(info.width >= 1000 && info.height >= 600);
    assert!(
        differing > pixels.len() / channels / 20,
        "the screenshot is almost one color"
    );
    let colors: std::collections::HashSet<&[u8]> = pixels.chunks(channels).collect();
    assert!(colors.len() > 8, "the frames are drawn in several colors");
}

/// `memtrace report` writes each format to a file.
#[test]
fn the_report_command_writes_every_format_to_a_file() {
    let dir = tempfile::tempdir().unwrap();
    for format in [
        Format::Folded,
        Format::Speedscope,
        Format::Markdown,
        Format::Json,
    ] {
        let output = dir.path().join(format!("{format:?}"));
        let args = formats::ReportArgs {
            input: common::fixtures().join("leak-report.json"),
            format,
            measure: Measure::LiveCount,
            output: Some(output.clone()),
        };
        formats::run_report(&args).expect("renders");
        let text = fs::read_to_string(&output).unwrap();
        assert!(text.contains("make_node"), "{format:?}: {text}");
    }
}

/// A report that is not one gives a one-line error naming the file and the problem.
#[test]
fn the_report_command_names_a_bad_input_and_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("trace.json");
    fs::write(&input, r#"{"version": 1, "target": {"pid": 1}}"#).unwrap();
    let args = formats::ReportArgs {
        input,
        format: Format::Folded,
        measure: Measure::LiveBytes,
        output: Some(dir.path().join("out")),
    };
    let message = format!("{:#}", formats::run_report(&args).unwrap_err());
    assert!(
        message.contains("trace.json` is not a memtrace JSON report: missing field `command`"),
        "{message}"
    );
    assert!(!message.contains('\n'));
    assert!(!dir.path().join("out").exists(), "nothing is written");
}

//! The benchmark's report: tables printed to the terminal, the issue's
//! targets checked against this run's figures, and (with
//! `TETHER_BENCH_REPORT`) `docs/performance.md` with its SVG chart. Apart
//! from the measurements in `roundtrip.rs`, which only fill [`Table`]s.

use std::path::Path;

/// One printed table.
pub struct Table {
    pub title: &'static str,
    pub unit: &'static str,
    pub rows: Vec<(String, f64)>,
    /// Whether rows compare with the first (else they are separate figures).
    pub ratios: bool,
}

impl Table {
    fn print(&self) {
        let base = self.rows[0].1;
        println!("\n{:<44} {:>10} {:>8}", self.title, self.unit, "ratio");
        for (label, value) in &self.rows {
            let decimals = if self.unit == "ms" {
                1
            } else if *value >= 1000.0 {
                0
            } else {
                2
            };
            if self.ratios {
                println!("{label:<44} {value:>10.decimals$} {:>8.2}", value / base);
            } else {
                println!("{label:<44} {value:>10.decimals$}");
            }
        }
    }

    fn markdown(&self, out: &mut String) {
        let base = self.rows[0].1;
        out.push_str(&format!(
            "\n| {} | {} | ratio |\n|---|---:|---:|\n",
            self.title, self.unit
        ));
        for (label, value) in &self.rows {
            let ratio = if self.ratios {
                format!("{:.2}", value / base)
            } else {
                String::new()
            };
            out.push_str(&format!("| {label} | {value:.2} | {ratio} |\n"));
        }
    }
}

/// A row's figure, by table title and the start of its label.
fn figure(tables: &[Table], title: &str, label: &str) -> Option<f64> {
    tables
        .iter()
        .find(|t| t.title.starts_with(title))?
        .rows
        .iter()
        .find(|(l, _)| l.starts_with(label))
        .map(|(_, v)| *v)
}

/// `value` with two decimals, or as many more as it takes for the figure
/// shown to give the verdict `met` gives the value itself (1.7996 against a
/// target of at least 1.8 shows as 1.7996, not as a "NOT met" 1.80).
fn shown(value: f64, met: impl Fn(f64) -> bool) -> String {
    let verdict = met(value);
    (2..=6)
        .map(|places| format!("{value:.places$}"))
        .find(|text| text.parse::<f64>().is_ok_and(|v| met(v) == verdict))
        .unwrap_or_else(|| format!("{value}"))
}

/// The targets, each computed from this run's figures: met or not.
fn targets(tables: &[Table]) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |what: String, value: f64, goal: f64, higher: bool| {
        let met = if higher { value >= goal } else { value <= goal };
        let sign = if higher { ">=" } else { "<=" };
        out.push(format!(
            "{} {what}: {} (target {sign} {goal})",
            if met { "met:" } else { "NOT met:" },
            shown(value, |v| if higher { v >= goal } else { v <= goal }),
        ));
    };
    let small = "small call";
    if let (Some(bare), Some(echo)) = (
        figure(tables, small, "bare pipe round trip, Rust"),
        figure(tables, small, "tether host.echo(i), native"),
    ) {
        check(
            "bare blocking round trip / host.echo".into(),
            bare / echo,
            5.0,
            true,
        );
        if let Some(seed) = figure(tables, small, "the seed's program") {
            check("seed's program / host.echo".into(), seed / echo, 10.0, true);
            if let Some(classic) = figure(tables, small, "tether classic.call") {
                check(
                    "seed's program / tether.classic".into(),
                    seed / classic,
                    1.0,
                    true,
                );
            }
        }
    }
    if let (Some(bare), Some(echo)) = (
        figure(tables, "small call, both sides pinned", "bare"),
        figure(tables, "small call, both sides pinned", "tether"),
    ) {
        check(
            "pinned host.echo / pinned bare round trip (issue 14)".into(),
            echo / bare,
            2.5,
            false,
        );
    }
    if let Some(plain) = figure(tables, "nesting", "plain") {
        if let Some(nested) = figure(tables, "nesting", "nested") {
            check(
                "nested call / plain host.echo (issue 14)".into(),
                nested / plain,
                3.0,
                false,
            );
        }
        if let Some(deep) = figure(tables, "nesting", "10 levels") {
            check(
                "10 levels deep / plain host.echo (issue 14)".into(),
                deep / plain,
                20.0,
                false,
            );
        }
    }
    if let (Some(one), Some(eight)) = (
        figure(tables, "throughput", "one thread"),
        figure(tables, "throughput", "8 threads"),
    ) {
        check(
            "8 threads / one thread calling the host, calls/s (issue 14)".into(),
            eight / one,
            0.8,
            true,
        );
    }
    if let (Some(one), Some(eight)) = (
        figure(tables, "threads calling a host function that sleeps", "one"),
        figure(tables, "threads calling a host function that sleeps", "8"),
    ) {
        check(
            "8 threads / one on a host function sleeping 1 ms (issue 14)".into(),
            eight / one,
            6.0,
            true,
        );
    }
    if let (Some(off), Some(on)) = (
        figure(tables, "8 scripts", "spinning off"),
        figure(tables, "8 scripts", "spinning on"),
    ) {
        check("8 scripts: spinning on / off".into(), on / off, 1.0, true);
    }
    if let (Some(blocking), Some(awaited)) = (
        figure(tables, "async: one caller", "blocking"),
        figure(tables, "async: one caller", "awaited"),
    ) {
        check(
            "awaited call_async / blocking call (issue 11)".into(),
            awaited / blocking,
            1.3,
            false,
        );
    }
    if let Some(tasks) = figure(tables, "async: many callers", "call_async") {
        check(
            "1,000 tasks on one aio.serve script, calls/s (issue 11)".into(),
            tasks,
            100_000.0,
            true,
        );
    }
    if let (Some(sync_fn), Some(async_fn)) = (
        figure(tables, "async: a script calling", "sync"),
        figure(tables, "async: a script calling", "async"),
    ) {
        check(
            "async host function / sync one (issue 11)".into(),
            async_fn / sync_fn,
            1.3,
            false,
        );
    }
    if let Some(p99) = figure(tables, "async: a call's timeout", "99th") {
        check(
            "timeout to the interrupted export's finally, p99 ms (issue 11)".into(),
            p99,
            50.0,
            false,
        );
    }
    if let (Some(one), Some(two)) = (
        figure(tables, "pool: a 2 ms", "1 worker"),
        figure(tables, "pool: a 2 ms", "2 workers"),
    ) {
        check(
            "pool of 2 / 1 worker, calls/s of a 2 ms export (issue 12)".into(),
            two / one,
            1.8,
            true,
        );
    }
    if let (Some(direct), Some(pooled)) = (
        figure(tables, "pool: a small call", "child.call"),
        figure(tables, "pool: a small call", "pool.call"),
    ) {
        check(
            "pool.call / child.call (issue 12)".into(),
            pooled / direct,
            1.1,
            false,
        );
    }
    if let (Some(py), Some(warm)) = (
        figure(tables, "warm start: spawn", "python3 -c pass"),
        figure(tables, "warm start: spawn", "warm script"),
    ) {
        check(
            "warm start to first call / python3 -c pass (issue 12)".into(),
            warm / py,
            0.25,
            false,
        );
    }
    if let (Some(cold), Some(warm)) = (
        figure(tables, "warm start with numpy: spawn", "cold"),
        figure(tables, "warm start with numpy: spawn", "warm"),
    ) {
        check(
            "warm start with numpy preloaded / cold numpy script (issue 12)".into(),
            warm / cold,
            0.1,
            false,
        );
    }
    if let (Some(plain), Some(confined)) = (
        figure(tables, "sandbox: spawn", "unsandboxed"),
        figure(tables, "sandbox: spawn", "default sandbox"),
    ) {
        check(
            "sandboxed spawn to first call / unsandboxed (issue 13)".into(),
            confined / plain,
            1.2,
            false,
        );
    }
    if let (Some(plain), Some(confined)) = (
        figure(tables, "sandbox: host.echo", "unsandboxed"),
        figure(tables, "sandbox: host.echo", "default sandbox"),
    ) {
        check(
            "sandboxed host.echo / unsandboxed (issue 13)".into(),
            confined / plain,
            1.05,
            false,
        );
    }
    if let Some(aio) = figure(tables, "throughput", "asyncio") {
        check("asyncio calls/s from one loop".into(), aio, 150_000.0, true);
    }
    let bulk = |shared: bool| {
        tables
            .iter()
            .find(|t| t.title.starts_with("bulk"))?
            .rows
            .iter()
            .find(|(l, _)| l.starts_with("tether") && l.ends_with("shared memory") == shared)
            .map(|(_, v)| *v)
    };
    if let (Some(bare), Some(pipe), Some(shm)) =
        (figure(tables, "bulk", "bare"), bulk(false), bulk(true))
    {
        check(
            "bulk echo through the pipe / bare 1 MiB pipe".into(),
            pipe / bare,
            0.9,
            true,
        );
        check(
            "bulk echo in shared memory / bare 1 MiB pipe".into(),
            shm / bare,
            3.0,
            true,
        );
    }
    if let (Some(value), Some(peak)) = (
        figure(tables, "memory while", "the value"),
        figure(tables, "memory while", "host peak RSS growth"),
    ) {
        check(
            "host peak RSS while echoing / value".into(),
            peak / value,
            2.5,
            false,
        );
    }
    if let Some(idle) = figure(tables, "memory per script", "host RSS per idle script") {
        check("host MiB per idle script".into(), idle, 2.0, false);
    }
    if let Some(import) = figure(tables, "memory per script", "script RSS added") {
        check(
            "MiB added to the script by import tether".into(),
            import,
            3.0,
            false,
        );
    }
    if let (Some(py), Some(first)) = (
        figure(tables, "start-up", "python3 -c pass"),
        figure(tables, "start-up", "spawn to first answered call"),
    ) {
        check(
            "spawn to first call / python3 -c pass".into(),
            first / py,
            1.15,
            false,
        );
    }
    out
}

/// Horizontal bars for the small-call table: one look instead of reading.
fn svg(table: &Table) -> String {
    let max = table.rows.iter().map(|r| r.1).fold(0.0, f64::max).max(1e-9);
    let (width, bar_left, row) = (760.0, 330.0, 28.0);
    let height = 40.0 + row * table.rows.len() as f64;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"13\">\n<text x=\"10\" y=\"20\" font-weight=\"bold\">{} ({}, shorter is better)</text>\n",
        table.title, table.unit
    );
    for (i, (label, value)) in table.rows.iter().enumerate() {
        let y = 34.0 + row * i as f64;
        let w = (width - bar_left - 80.0) * value / max;
        out += &format!(
            "<text x=\"10\" y=\"{:.0}\">{}</text><rect x=\"{bar_left}\" y=\"{y:.0}\" width=\"{w:.1}\" height=\"18\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{:.0}\">{value:.2}</text>\n",
            y + 14.0,
            label.replace('<', "&lt;").replace('>', "&gt;"),
            if label.starts_with("tether") { "#3572a5" } else { "#999999" },
            bar_left + w + 6.0,
            y + 14.0
        );
    }
    out + "</svg>\n"
}

/// Prints the tables and the targets, and writes the report when asked.
pub fn finish(tables: &[Table], n: usize, runs: usize) {
    for t in tables {
        t.print();
    }
    let checks = targets(tables);
    if !checks.is_empty() {
        println!("\ntargets, from this run:");
        for line in &checks {
            println!("  {line}");
        }
    }
    // `TETHER_BENCH_REPORT=docs/performance.md` writes the tables there and
    // the small-call chart beside it (`performance.svg`).
    if let Some(report) = std::env::var_os("TETHER_BENCH_REPORT") {
        // Relative to the workspace root (cargo runs benches in the package's directory).
        let report = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(report);
        let mut md = format!(
            "# Performance\n\nWritten by `TETHER_BENCH_REPORT=docs/performance.md cargo bench --bench roundtrip` \
             ({n} calls per run, median of {runs} runs, ratios against the first row of each table, \
             all measured in the same run on a 2-vCPU machine; shared and noisy, so compare ratios, not \
             absolute figures).\n\n![small calls](performance.svg)\n"
        );
        if !checks.is_empty() {
            md.push_str("\n## Targets, checked against this run\n\n");
            for line in &checks {
                md.push_str(&format!("- {line}\n"));
            }
        }
        md.push_str("\n## Tables\n");
        for t in tables {
            t.markdown(&mut md);
        }
        let svg_path = report.with_file_name("performance.svg");
        std::fs::write(&report, md)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", report.display()));
        let chart = tables
            .iter()
            .find(|t| t.title.starts_with("small call ("))
            .unwrap_or(&tables[0]);
        std::fs::write(&svg_path, svg(chart))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", svg_path.display()));
        println!("\nwrote {}", report.display());
    }
}

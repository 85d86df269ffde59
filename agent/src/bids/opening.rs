//! Opening many bids: each file is decrypted to a temporary file, its signature and vendor
//! chain checked, then renamed into the output folder. Files run on a few threads; the token
//! sees only the key unwraps, through its own workers. A failing bid leaves nothing behind
//! and does not stop the others.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::cms::DecryptionKey;
use crate::cms::open::{open_reader, output_name};
use crate::cms::verify::VerifyOptions;

use super::report::OpeningReport;
use super::{Progress, run_parallel};

/// How to open a batch.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Trust anchors and intermediates for the vendors' chains.
    pub verify: VerifyOptions,
    /// Files processed at once (see [`super::default_threads`]).
    pub threads: usize,
}

/// A reader that tells the progress observer how much it has read.
struct Counted<'a, R> {
    inner: R,
    progress: &'a dyn Progress,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }
}

/// Open every file into `out_dir`; one report line per file, in input order.
pub fn open_many(
    key: &(dyn DecryptionKey + Sync),
    files: &[PathBuf],
    out_dir: &Path,
    opts: &OpenOptions,
    progress: &dyn Progress,
) -> Vec<OpeningReport> {
    let total: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    progress.begin(files.len(), total);
    // Two bids that would open to the same name: the second one fails (nothing is replaced).
    let mut first_by_output: HashMap<String, &Path> = HashMap::new();
    let clash: Vec<Option<String>> = files
        .iter()
        .map(|f| {
            let name = output_name(f).ok()?;
            match first_by_output.get(&name) {
                Some(first) => Some(format!(
                    "opens to the same name {name:?} as {}; open it separately into another folder",
                    first.display()
                )),
                None => {
                    first_by_output.insert(name, f);
                    None
                }
            }
        })
        .collect();
    run_parallel(files.len(), opts.threads, |i| {
        let file = &files[i];
        let line = match &clash[i] {
            Some(why) => OpeningReport::failed(file, "IO_ERROR", why.clone()),
            None => open_one(key, file, out_dir, &opts.verify, progress),
        };
        progress.file_done(file, line.output.is_some());
        line
    })
}

fn open_one(
    key: &dyn DecryptionKey,
    file: &Path,
    out_dir: &Path,
    verify: &VerifyOptions,
    progress: &dyn Progress,
) -> OpeningReport {
    let reader = match std::fs::File::open(file) {
        Ok(f) => Counted { inner: f, progress },
        Err(e) => return OpeningReport::from_error(file, &e.into()),
    };
    match open_reader(key, reader, file, out_dir, verify) {
        Ok((report, output)) => OpeningReport::opened(file, &output, &report),
        Err(e) => OpeningReport::from_error(file, &e),
    }
}

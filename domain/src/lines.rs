//! Commands in JSON Lines (one command object per line, as `from_json` reads it), read a
//! bounded batch at a time from any reader: memory stays bounded whatever the input's size,
//! every line is at most [`MAX_LINE`] bytes, and the first bad line ends the input with its
//! number, the lines before it still usable.

use std::io::BufRead;

use crate::command::{for_person, from_json};
use crate::{Command, Error, PersonId};

/// The longest line read, in bytes (a command is far smaller; README, Limits). A longer line
/// is a bad line, and nothing past the limit is read.
pub const MAX_LINE: usize = 64 * 1024;

/// A reader of command lines.
pub struct Lines<R> {
    reader: R,
    number: usize,
    done: bool,
}

/// A batch of commands, each with its line number, and the first bad line with its number
/// (the input ends there).
pub type Batch = (Vec<(usize, (PersonId, Command))>, Option<(usize, Error)>);

impl<R: BufRead> Lines<R> {
    /// Reads commands from `reader`. A `register` without a person gets a new id.
    pub fn new(reader: R) -> Lines<R> {
        Lines {
            reader,
            number: 0,
            done: false,
        }
    }

    /// The next line's bytes, at most [`MAX_LINE`] of them; `None` at the end.
    fn next_line(&mut self) -> Result<Option<Vec<u8>>, Error> {
        let mut line = Vec::new();
        loop {
            let available = self
                .reader
                .fill_buf()
                .map_err(|e| Error::BadLine(format!("reading it: {e}")))?;
            if available.is_empty() {
                return Ok((!line.is_empty()).then_some(line));
            }
            let (take, end) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (i, true),
                None => (available.len(), false),
            };
            if line.len() + take > MAX_LINE {
                return Err(Error::BadLine(format!(
                    "the line is longer than {MAX_LINE} bytes (the limit of one command)"
                )));
            }
            line.extend_from_slice(&available[..take]);
            self.reader.consume(take + usize::from(end));
            if end {
                return Ok(Some(line));
            }
        }
    }

    /// Up to `max` commands (blank lines skipped), and the first bad line's number and error
    /// (the batch then ends there, and so does the input).
    pub fn batch(&mut self, max: usize) -> Batch {
        let mut commands = Vec::new();
        while !self.done && commands.len() < max {
            self.number += 1;
            let number = self.number;
            let parsed = self.next_line().and_then(|line| {
                let Some(line) = line else {
                    self.done = true;
                    return Ok(None);
                };
                let text = std::str::from_utf8(&line)
                    .map_err(|e| Error::BadLine(format!("not UTF-8 text ({e})")))?;
                if text.trim().is_empty() {
                    return Ok(None);
                }
                let command = from_json(text).and_then(for_person);
                command.map(Some).map_err(|e| Error::BadLine(e.to_string()))
            });
            match parsed {
                Ok(Some(c)) => commands.push((number, c)),
                Ok(None) => {}
                Err(e) => {
                    self.done = true;
                    return (commands, Some((number, e)));
                }
            }
        }
        (commands, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(bytes: Vec<u8>) -> Lines<std::io::Cursor<Vec<u8>>> {
        Lines::new(std::io::Cursor::new(bytes))
    }

    #[test]
    fn lines_are_bounded_and_a_bad_line_keeps_the_ones_before() {
        let good = r#"{"command":"register","legal_name":"A"}"#;
        let mut bytes = format!("{good}\n\n{good}\n").into_bytes();
        bytes.extend_from_slice(b"\xff\xfe{}\n");
        bytes.extend_from_slice(good.as_bytes());
        let (commands, bad) = lines(bytes).batch(10);
        assert_eq!(commands.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [1, 3]);
        let (n, e) = bad.unwrap();
        assert_eq!(n, 4);
        assert!(e.to_string().contains("UTF-8"), "{e}");
        // An endless line stops at the limit, with nothing read past it.
        let (commands, bad) = lines(vec![b' '; MAX_LINE + 1]).batch(10);
        assert!(commands.is_empty());
        assert!(bad.unwrap().1.to_string().contains("longer than"));
        // A command for nobody is a bad line.
        let (_, bad) = lines(br#"{"command":"add-email","address":"a@b.org"}"#.to_vec()).batch(1);
        assert!(bad.unwrap().1.to_string().contains("person is required"));
        // Batches: a bounded number of commands at a time, numbered across batches.
        let mut lines = lines(format!("{good}\n").repeat(5).into_bytes());
        assert_eq!(lines.batch(2).0.len(), 2);
        assert_eq!(lines.batch(2).0[1].0, 4);
        assert_eq!(lines.batch(2).0.len(), 1);
        assert!(lines.batch(2).0.is_empty());
    }
}

//! A small `--name value` option reader that refuses options nobody asked for, so a typo in a
//! benchmark script fails loudly instead of silently running with a default.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use anyhow::{Context, bail};

pub struct Args {
    values: HashMap<String, String>,
    used: RefCell<HashSet<String>>,
}

impl Args {
    /// Reads `--name value` and `--name=value` pairs; `--flag` alone means `true`.
    pub fn parse(raw: impl IntoIterator<Item = String>) -> anyhow::Result<Args> {
        let mut values = HashMap::new();
        let mut raw = raw.into_iter().peekable();
        while let Some(arg) = raw.next() {
            let Some(name) = arg.strip_prefix("--") else {
                bail!("unexpected argument {arg:?}; options look like --name value");
            };
            let (name, value) = match name.split_once('=') {
                Some((name, value)) => (name.to_owned(), value.to_owned()),
                None => match raw.next_if(|next| !next.starts_with("--")) {
                    Some(value) => (name.to_owned(), value),
                    None => (name.to_owned(), "true".to_owned()),
                },
            };
            if values.insert(name.clone(), value).is_some() {
                bail!("--{name} given twice");
            }
        }
        Ok(Args {
            values,
            used: RefCell::new(HashSet::new()),
        })
    }

    fn raw(&self, name: &str) -> Option<&str> {
        self.used.borrow_mut().insert(name.to_owned());
        self.values.get(name).map(String::as_str)
    }

    /// The option's value, or `default` when it is absent.
    pub fn get<T>(&self, name: &str, default: T) -> anyhow::Result<T>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        Ok(self.optional(name)?.unwrap_or(default))
    }

    pub fn optional<T>(&self, name: &str) -> anyhow::Result<Option<T>>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.raw(name) {
            None => Ok(None),
            Some(text) => text
                .parse()
                .map(Some)
                .map_err(|err| anyhow::anyhow!("--{name} {text:?}: {err}")),
        }
    }

    pub fn required<T>(&self, name: &str) -> anyhow::Result<T>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        self.optional(name)?
            .with_context(|| format!("--{name} is required"))
    }

    pub fn flag(&self, name: &str) -> anyhow::Result<bool> {
        self.get(name, false)
    }

    /// Fails on any option that no reader asked for.
    pub fn finish(&self) -> anyhow::Result<()> {
        let used = self.used.borrow();
        let mut unknown: Vec<&String> = self.values.keys().filter(|k| !used.contains(*k)).collect();
        unknown.sort();
        match unknown.first() {
            Some(name) => bail!("unknown option --{name}; try --help"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> anyhow::Result<Args> {
        Args::parse(text.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn reads_pairs_flags_and_defaults() -> anyhow::Result<()> {
        let a = args("--rate 500 --verify --name=x")?;
        assert_eq!(a.get("rate", 1u32)?, 500);
        assert!(a.flag("verify")?);
        assert_eq!(a.required::<String>("name")?, "x");
        assert_eq!(a.get("missing", 7u8)?, 7);
        a.finish()
    }

    #[test]
    fn an_option_nobody_reads_is_an_error() -> anyhow::Result<()> {
        let a = args("--rtae 500")?;
        assert_eq!(a.get("rate", 1u32)?, 1);
        assert!(a.finish().is_err());
        Ok(())
    }
}

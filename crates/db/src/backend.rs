use crate::DbError;

/// The database servers Tern can run on, chosen by the scheme of `database.url`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    Mysql,
}

impl Backend {
    /// Reads the backend from a URL and returns it with the string the driver expects.
    ///
    /// `sqlite://path`, `sqlite:path` and a bare file path all mean SQLite; the driver wants the
    /// plain path, so the scheme is stripped here.
    pub fn from_url(url: &str) -> Result<(Backend, String), DbError> {
        if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            return Ok((Backend::Sqlite, path.to_owned()));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok((Backend::Postgres, url.to_owned()));
        }
        if url.starts_with("mysql://") || url.starts_with("mariadb://") {
            if !cfg!(feature = "mysql") {
                return Err(DbError::UnsupportedUrl(
                    "mysql support is not compiled in; build with --features mysql".into(),
                ));
            }
            return Ok((Backend::Mysql, url.replacen("mariadb://", "mysql://", 1)));
        }
        if url.contains("://") {
            return Err(DbError::UnsupportedUrl(redact(url)));
        }
        Ok((Backend::Sqlite, url.to_owned()))
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
            Backend::Mysql => "mysql",
        }
    }
}

/// Hides the password in a URL so it can be logged or shown in an error.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_selects_the_backend() -> Result<(), DbError> {
        assert_eq!(Backend::from_url("sqlite://data/t.db")?, (Backend::Sqlite, "data/t.db".into()));
        assert_eq!(Backend::from_url("data/t.db")?.0, Backend::Sqlite);
        assert_eq!(Backend::from_url("postgres://u@h/db")?.0, Backend::Postgres);
        assert!(Backend::from_url("redis://h").is_err());
        Ok(())
    }

    #[test]
    fn redact_hides_the_password() {
        assert_eq!(redact("postgres://bob:secret@h/db"), "postgres://bob:***@h/db");
        assert_eq!(redact("sqlite://x.db"), "sqlite://x.db");
    }
}

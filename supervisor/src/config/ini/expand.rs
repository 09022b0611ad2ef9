//! supervisord's `%(name)s` expansions: Python's `%`-formatting with a
//! dictionary, which supervisord applies to every value it reads.
//!
//! `%%` is a literal `%`; `%(name)` is followed by optional flags (`-`, `0`),
//! an optional width and a conversion (`s`, `d` or `i`). Any other `%` is an
//! error, as in supervisord. Names: `here`, `host_node_name`,
//! `program_name`, `group_name`, `numprocs`, `process_num` and `ENV_X`; the
//! caller's [`Vars`] says which are available where.
//!
//! `process_num` differs per replica, so where nsvisor substitutes replicas
//! itself (command, directory, environment, log files) `%(process_num)d`
//! becomes nsvisor's `{process_num}` and `%(process_num)02d` becomes
//! `{process_num:02}`; [`Template::expand`](crate::config) fills them in.
//!
//! Pure: the environment comes in as a closure.

/// What a `%(name)…` can expand to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::config) enum Var {
    Str(String),
    Int(i64),
    /// `process_num`: left for replica expansion.
    ProcessNum,
}

/// The names available to one value.
pub(in crate::config) struct Vars<'a> {
    /// `here`, `program_name`, … (not `ENV_`).
    pub names: Vec<(&'static str, Var)>,
    /// `ENV_X` → X's value.
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

impl Vars<'_> {
    fn get(&self, name: &str) -> Option<Var> {
        if let Some(var) = name.strip_prefix("ENV_") {
            return (self.env)(var).map(Var::Str);
        }
        self.names
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    }

    fn available(&self) -> String {
        let mut names: Vec<&str> = self.names.iter().map(|(n, _)| *n).collect();
        names.push("ENV_<variable>");
        names.join(", ")
    }
}

/// Why a value could not be expanded; `at` is a byte offset in the value.
#[derive(Debug, PartialEq, Eq)]
pub(in crate::config) struct ExpandError {
    pub at: usize,
    pub message: String,
}

/// Expands every `%(…)` of `s`.
pub(in crate::config) fn expand(s: &str, vars: &Vars) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let at = s.len() - rest.len() + i;
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('%') {
            out.push('%');
            rest = tail;
            continue;
        }
        let err = |message: String| ExpandError { at, message };
        let Some(body) = after.strip_prefix('(') else {
            return Err(err(
                "a \"%\" must start %(name)s or be written \"%%\"".to_string()
            ));
        };
        let Some(close) = body.find(')') else {
            return Err(err("unterminated \"%(\" (missing \")\")".into()));
        };
        let name = &body[..close];
        let spec_text = &body[close + 1..];
        let Some((spec, used)) = Spec::parse(spec_text) else {
            return Err(err(format!(
                "%({name}) must be followed by a conversion such as \"s\" or \"02d\""
            )));
        };
        let Some(value) = vars.get(name) else {
            let message = match name.strip_prefix("ENV_") {
                Some(var) => format!("%({name})s: environment variable \"{var}\" is not set"),
                None => format!(
                    "%({name}) cannot be expanded here; available: {}",
                    vars.available()
                ),
            };
            return Err(err(message));
        };
        out.push_str(&spec.render(name, &value).map_err(err)?);
        rest = &spec_text[used..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The widest padding a value may ask for (`%(here)4096s`): a config
/// cannot make the loader allocate more than that per expansion.
const MAX_WIDTH: usize = 4096;

/// `[-0]*[width]conversion`.
struct Spec {
    left: bool,
    zero: bool,
    width: usize,
    conv: char,
}

impl Spec {
    /// The spec at the start of `s` and how many bytes it takes.
    fn parse(s: &str) -> Option<(Spec, usize)> {
        let mut spec = Spec {
            left: false,
            zero: false,
            width: 0,
            conv: 's',
        };
        let mut chars = s.char_indices().peekable();
        while let Some(&(_, c)) = chars.peek() {
            match c {
                '-' => spec.left = true,
                '0' => spec.zero = true,
                _ => break,
            }
            chars.next();
        }
        let mut digits = String::new();
        while let Some(&(_, c)) = chars.peek() {
            if !c.is_ascii_digit() {
                break;
            }
            digits.push(c);
            chars.next();
        }
        // A width too large for usize counts as over the limit, not as none.
        spec.width = match digits.as_str() {
            "" => 0,
            d => d.parse().unwrap_or(usize::MAX),
        };
        let (i, conv) = chars.next()?;
        spec.conv = conv;
        Some((spec, i + conv.len_utf8()))
    }

    fn render(&self, name: &str, value: &Var) -> Result<String, String> {
        if self.width > MAX_WIDTH {
            return Err(format!(
                "%({name}): a width of {} is over the limit of {MAX_WIDTH}",
                self.width
            ));
        }
        let text = match (self.conv, value) {
            ('s' | 'd' | 'i', Var::ProcessNum) => {
                if self.left || (self.width > 0 && !self.zero) {
                    return Err(format!(
                        "%({name}): only the forms %(process_num)d and %(process_num)0Nd are supported"
                    ));
                }
                return Ok(if self.width > 0 {
                    format!("{{process_num:0{}}}", self.width)
                } else {
                    "{process_num}".to_string()
                });
            }
            ('s', Var::Str(s)) => s.clone(),
            ('s' | 'd' | 'i', Var::Int(n)) => n.to_string(),
            ('d' | 'i', Var::Str(s)) => match s.trim().parse::<i64>() {
                Ok(n) => n.to_string(),
                Err(_) => return Err(format!("%({name}){}: \"{s}\" is not a number", self.conv)),
            },
            (c, _) => {
                return Err(format!(
                    "%({name}){c}: unsupported conversion \"{c}\" (use s or d)"
                ))
            }
        };
        let pad = self.width.saturating_sub(text.chars().count());
        Ok(if pad == 0 {
            text
        } else if self.left {
            format!("{text}{}", " ".repeat(pad))
        } else if self.zero && self.conv != 's' {
            match text.strip_prefix('-') {
                Some(digits) => format!("-{}{digits}", "0".repeat(pad)),
                None => format!("{}{text}", "0".repeat(pad)),
            }
        } else {
            format!("{}{text}", " ".repeat(pad))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/root".into()),
            "N" => Some("7".into()),
            _ => None,
        }
    }

    fn vars() -> Vars<'static> {
        Vars {
            names: vec![
                ("here", Var::Str("/etc/sv".into())),
                ("program_name", Var::Str("web".into())),
                ("group_name", Var::Str("front".into())),
                ("host_node_name", Var::Str("box".into())),
                ("numprocs", Var::Int(3)),
                ("process_num", Var::ProcessNum),
            ],
            env: &env,
        }
    }

    fn ok(s: &str) -> String {
        expand(s, &vars()).unwrap_or_else(|e| panic!("{s}: {e:?}"))
    }

    #[test]
    fn every_name_expands() {
        assert_eq!(ok("%(here)s/x"), "/etc/sv/x");
        assert_eq!(ok("%(program_name)s-%(group_name)s"), "web-front");
        assert_eq!(ok("%(host_node_name)s"), "box");
        assert_eq!(ok("%(ENV_HOME)s/.cache"), "/root/.cache");
        assert_eq!(ok("n=%(numprocs)d %(numprocs)03d"), "n=3 003");
        assert_eq!(ok("%(ENV_N)d|%(ENV_N)3d|%(ENV_N)-3s|"), "7|  7|7  |");
        assert_eq!(ok("100%% %(program_name)5s"), "100%   web");
    }

    #[test]
    fn a_width_over_the_limit_is_an_error_not_an_allocation() {
        assert_eq!(ok("%(program_name)4096s").len(), 4096);
        for value in [
            "%(here)4097s",
            "%(here)99999999999999971s",
            "%(process_num)099999999999999999999999d",
        ] {
            let e = expand(value, &vars()).unwrap_err();
            assert!(
                e.message.contains("over the limit of 4096"),
                "{value}: {}",
                e.message
            );
        }
    }

    #[test]
    fn process_num_is_left_for_replicas() {
        assert_eq!(ok("w_%(process_num)02d"), "w_{process_num:02}");
        assert_eq!(
            ok("%(process_num)d/%(process_num)s"),
            "{process_num}/{process_num}"
        );
        let e = expand("%(process_num)2d", &vars()).unwrap_err();
        assert!(e.message.contains("only the forms"), "{}", e.message);
    }

    #[test]
    fn errors_name_the_problem_and_offset() {
        let e = expand("ab%(nope)s", &vars()).unwrap_err();
        assert_eq!(e.at, 2);
        assert!(
            e.message.contains("available: here, program_name"),
            "{}",
            e.message
        );
        let e = expand("%(ENV_MISSING)s", &vars()).unwrap_err();
        assert!(
            e.message.contains("\"MISSING\" is not set"),
            "{}",
            e.message
        );
        let e = expand("50% off", &vars()).unwrap_err();
        assert_eq!(e.at, 2);
        assert!(e.message.contains("\"%%\""));
        assert!(expand("%(here", &vars())
            .unwrap_err()
            .message
            .contains("unterminated"));
        assert!(expand("%(here)", &vars())
            .unwrap_err()
            .message
            .contains("conversion"));
        assert!(expand("%(here)x", &vars())
            .unwrap_err()
            .message
            .contains("unsupported"));
        assert!(expand("%(program_name)d", &vars())
            .unwrap_err()
            .message
            .contains("not a number"));
    }
}

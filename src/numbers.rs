//! Number flags (`--max-entries`, `--handover-timeout`, ...): a negative or
//! malformed value gets a plain message, not clap's tip to pass it after
//! `--` (which would hand it to the guest instead).

use std::str::FromStr;

/// A count: a whole number from 0 up.
pub fn count<T: FromStr>(value: &str) -> Result<T, String> {
    if value.trim_start().starts_with('-') {
        return Err(format!(
            "{value} is negative; give a whole number from 0 up"
        ));
    }
    value
        .parse()
        .map_err(|_| format!("{value:?} is not a whole number; give one from 0 up, e.g. 10"))
}

/// A percentage: a whole number from 0 to 100 (a trailing `%` allowed).
pub fn percent(value: &str) -> Result<usize, String> {
    match count::<usize>(value.strip_suffix('%').unwrap_or(value))? {
        n if n <= 100 => Ok(n),
        n => Err(format!("{n} is over 100; give a percentage from 0 to 100")),
    }
}

/// A duration in seconds: a finite number from 0 up, fractions allowed.
pub fn seconds(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(s) if (0.0..=1e9).contains(&s) => Ok(s),
        Ok(s) if s < 0.0 => Err(format!(
            "{value} is negative; give a number of seconds from 0 up"
        )),
        _ => Err(format!(
            "{value:?} is not a number of seconds; give one like 5 or 0.5"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_and_malformed_values_say_so() {
        assert_eq!(count::<usize>("12"), Ok(12));
        assert_eq!(
            count::<usize>("-1").unwrap_err(),
            "-1 is negative; give a whole number from 0 up"
        );
        assert!(
            count::<u32>("x")
                .unwrap_err()
                .contains("not a whole number")
        );
        assert_eq!(percent("25%"), Ok(25));
        assert!(percent("101").unwrap_err().contains("over 100"));
        assert_eq!(seconds("0.5"), Ok(0.5));
        assert!(seconds("-1").unwrap_err().contains("negative"));
        assert!(
            seconds("NaN")
                .unwrap_err()
                .contains("not a number of seconds")
        );
        assert!(
            seconds("inf")
                .unwrap_err()
                .contains("not a number of seconds")
        );
    }
}

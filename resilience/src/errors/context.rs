use std::fmt;

/// Key–value facts about where an error happened (operation id, item index, file, ...),
/// recorded with it in [`ErrorRecord::context`](super::ErrorRecord::context).
///
/// Entries keep their insertion order. Setting a key that is already present replaces its value
/// in place, so each key appears once, at the position where it was first set.
///
/// ```
/// use resilience::ErrorContext;
///
/// let context = ErrorContext::new()
///     .with("operation", "import-7")
///     .with("item", 42)
///     .with("operation", "import-8");
///
/// assert_eq!(context.get("item"), Some("42"));
/// assert_eq!(
///     context.entries(),
///     [("operation".to_string(), "import-8".to_string()), ("item".to_string(), "42".to_string())],
/// );
/// assert_eq!(context.to_string(), "operation=import-8, item=42");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorContext {
    entries: Vec<(String, String)>,
}

impl ErrorContext {
    /// An empty context.
    pub const fn new() -> Self {
        ErrorContext { entries: Vec::new() }
    }

    /// Adds `key` with the `Display` text of `value` (or replaces the value of an existing key).
    #[must_use]
    pub fn with(mut self, key: impl Into<String>, value: impl fmt::Display) -> Self {
        self.insert(key, value);
        self
    }

    /// Like [`with`](Self::with), through a mutable reference.
    ///
    /// ```
    /// let mut context = resilience::ErrorContext::new();
    /// context.insert("attempt", 3);
    /// assert_eq!(context.get("attempt"), Some("3"));
    /// ```
    pub fn insert(&mut self, key: impl Into<String>, value: impl fmt::Display) {
        let key = key.into();
        let value = value.to_string();
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = value,
            None => self.entries.push((key, value)),
        }
    }

    /// The value recorded for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// All entries, in insertion order.
    pub fn entries(&self) -> &[(String, String)] {
        &self.entries
    }

    /// The entries as `(key, value)` string pairs, in insertion order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries, in insertion order.
    pub fn into_entries(self) -> Vec<(String, String)> {
        self.entries
    }
}

/// `key=value` pairs separated by `, `, in insertion order.
impl fmt::Display for ErrorContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_entries(f, &self.entries)
    }
}

impl From<ErrorContext> for Vec<(String, String)> {
    fn from(context: ErrorContext) -> Self {
        context.entries
    }
}

pub(super) fn write_entries(
    f: &mut fmt::Formatter<'_>,
    entries: &[(String, String)],
) -> fmt::Result {
    for (i, (key, value)) in entries.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{key}={value}")?;
    }
    Ok(())
}

//! The weekdays a calling window is open on, as the database stores them.

use chrono::Weekday;

use super::WindowError;

/// A set of weekdays, stored as the bits of the `window_days` column:
/// bit 0 = Monday … bit 6 = Sunday. Keeping the database's encoding means
/// the value goes to and from storage without a translation table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DaySet(u8);

impl DaySet {
    /// The bits that name a weekday; any other bit is invalid.
    const MASK: u8 = 0b0111_1111;

    /// Reads the `window_days` column. Any value in `0..=127` is a set (0 is
    /// the empty set, which [`super::CallingWindow::new`] refuses); anything
    /// else names a day that does not exist.
    pub fn from_bits(bits: i16) -> Result<Self, WindowError> {
        match u8::try_from(bits) {
            Ok(b) if b & !Self::MASK == 0 => Ok(DaySet(b)),
            _ => Err(WindowError::DayBitsOutOfRange(bits)),
        }
    }

    /// The value to store in the `window_days` column.
    pub fn bits(self) -> i16 {
        i16::from(self.0)
    }

    /// Every day of the week.
    pub fn all() -> Self {
        DaySet(Self::MASK)
    }

    /// No day at all (a window on it never opens).
    pub fn empty() -> Self {
        DaySet(0)
    }

    /// Monday to Friday, the usual business week.
    pub fn weekdays() -> Self {
        DaySet(0b0001_1111)
    }

    /// The set of the given days.
    pub fn from_days<I: IntoIterator<Item = Weekday>>(days: I) -> Self {
        days.into_iter().fold(DaySet::empty(), DaySet::with)
    }

    /// This set with `day` added.
    pub fn with(self, day: Weekday) -> Self {
        DaySet(self.0 | Self::bit(day))
    }

    /// Whether `day` is in the set.
    pub fn contains(&self, day: Weekday) -> bool {
        self.0 & Self::bit(day) != 0
    }

    /// Whether no day is in the set.
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// The days in the set, Monday first.
    pub fn iter(self) -> impl Iterator<Item = Weekday> {
        [
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
            Weekday::Sat,
            Weekday::Sun,
        ]
        .into_iter()
        .filter(move |d| self.contains(*d))
    }

    fn bit(day: Weekday) -> u8 {
        1 << day.num_days_from_monday()
    }
}

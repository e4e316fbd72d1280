//! Contact list import (CSV and JSON): see the helper's work.

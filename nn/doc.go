// Package nn holds neural-network operations for gorgonia graphs.
package nn

import (
	// gorgonia v0.9.18 panics at start-up on Go 1.26 unless this module is at
	// its latest version; importing it directly keeps `go mod tidy` from
	// dropping the upgrade.
	_ "go4.org/unsafe/assume-no-moving-gc"
)

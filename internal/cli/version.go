package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Release is the resdet release the sources belong to.
const Release = "0.1.0-dev"

// Version returns the version line printed by every command's --version:
// the release, the VCS revision the binary was built from when Go recorded
// one (with "+dirty" for a modified tree), and the Go version, e.g.
// "0.1.0-dev (rev 5f296cb1a2b3+dirty, go1.26.8)".
func Version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return versionString("", false, runtime.Version())
	}
	var rev string
	var dirty bool
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	return versionString(rev, dirty, info.GoVersion)
}

func versionString(rev string, dirty bool, goVersion string) string {
	if rev == "" {
		return fmt.Sprintf("%s (%s)", Release, goVersion)
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "+dirty"
	}
	return fmt.Sprintf("%s (rev %s, %s)", Release, rev, goVersion)
}

// Package kinds imports every built-in tracker kind so that their init
// functions register them. The CLI and end-to-end tests import it; the
// agent itself stays independent of which kinds exist.
package kinds

import (
	_ "github.com/rouse-dev/rouse/trackers/container" // container: Docker/Podman containers
	_ "github.com/rouse-dev/rouse/trackers/exec"      // exec: supervised commands
	_ "github.com/rouse-dev/rouse/trackers/http"      // http and the lastfm preset
	_ "github.com/rouse-dev/rouse/trackers/network"   // network: online/offline
	_ "github.com/rouse-dev/rouse/trackers/roon"      // roon: a Roon extension
	_ "github.com/rouse-dev/rouse/trackers/websocket" // websocket streams
)

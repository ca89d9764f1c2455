package main

import (
	"github.com/rouse-dev/rouse/trackers"
	"github.com/rouse-dev/rouse/trackers/container"
	"github.com/rouse-dev/rouse/trackers/exec"
	"github.com/rouse-dev/rouse/trackers/http"
	"github.com/rouse-dev/rouse/trackers/network"
	"github.com/rouse-dev/rouse/trackers/roon"
	"github.com/rouse-dev/rouse/trackers/websocket"
)

// builtinKinds is the set of tracker kinds rouse offers its config: every
// config the CLI reads is parsed against it, and the agent builds its
// components from it. A new kind is added here, and nowhere else.
func builtinKinds() trackers.Kinds {
	return trackers.NewKinds(
		container.Kind, // Docker/Podman containers
		exec.Kind,      // supervised commands
		http.Kind,      // polled HTTP APIs
		http.LastfmKind,
		network.Kind, // online/offline and the network's return after a wake
		roon.Kind,    // a Roon extension
		websocket.Kind,
	)
}

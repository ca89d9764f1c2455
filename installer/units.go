package installer

import (
	"errors"
	"fmt"
	"strings"
)

// The service files are templates in kardianos/service's own small template
// language (not text/template): the library renders them when it installs
// (its SystemdScript and LaunchdConfig options), and Render renders the very
// same text for the Debian package and the tests. They use only the keys and
// pipelines listed in render, so both renderings agree; a test installs
// through the library and compares.

// Description is the one-line description every service manager shows.
const Description = "rouse: brings trackers, tunnels and jobs back after sleep"

// The systemd unit shared by the user and the system flavour. Why each line:
//   - Type=notify: the agent sends READY=1 once its API listens, so
//     "systemctl start" returns when rouse really answers.
//   - WatchdogSec=30: the agent pings at half that; a wedged agent is
//     killed and restarted.
//   - Restart=always with RestartSec=2: back in two seconds, not the
//     library's 120. RestartPreventExitStatus=78 stops the loop on a bad
//     config (rouse exits 78, EX_CONFIG), which no restart can fix. Not 2:
//     the Go runtime exits 2 on a panic, a fatal error and on SIGABRT (the
//     watchdog's signal), and those must be restarted.
//   - KillMode=mixed: "systemctl stop" sends SIGTERM to rouse alone, which
//     stops its components in reverse dependency order; systemd SIGKILLs
//     only what is left once rouse has exited (the default control-group
//     mode would SIGTERM every child at once, behind rouse's back).
//   - Delegate=yes: rouse gets its cgroup subtree, so it can put each exec
//     component in a cgroup of its own and kill all of it on stop (a child
//     that daemonizes cannot escape).
//   - ConditionFileIsExecutable: once the binary is gone (package removed)
//     the unit is skipped instead of failing in a loop.
const unitHead = `[Unit]
Description={{Description}}
ConditionFileIsExecutable={{Path | cmdEscape}}
StartLimitIntervalSec=60
StartLimitBurst=10
`

const unitService = `
[Service]
Type=notify
NotifyAccess=main
ExecStart={{Path | cmdEscape}}{{range Arguments}} {{. | cmd}}{{end}}
Restart=always
RestartSec=2
RestartPreventExitStatus=78
WatchdogSec=30
TimeoutStopSec=30
KillMode=mixed
Delegate=yes
`

// UserUnit is the systemd user unit (~/.config/systemd/user/rouse.service,
// or /usr/lib/systemd/user/rouse.service from the package). default.target
// is what a user manager starts at login (or at boot with lingering).
const UserUnit = unitHead + unitService + `
[Install]
WantedBy=default.target
`

// SystemUnit is the systemd system unit. Hardening: the whole file system is
// read-only (ProtectSystem=strict) but for the data directory, which
// StateDirectory creates; /etc/rouse is only read. Home directories stay
// readable (ProtectHome=read-only), because trackers may read a key file
// or an SSH config there, but nothing under them is written: a job that
// writes into a home directory belongs in the user service.
const SystemUnit = `[Unit]
Description={{Description}}
ConditionFileIsExecutable={{Path | cmdEscape}}
After=network.target systemd-logind.service
StartLimitIntervalSec=60
StartLimitBurst=10
` + unitService + `NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=read-only
PrivateTmp=yes
StateDirectory=rouse
StateDirectoryMode=0700
ReadWritePaths=/var/lib/rouse

[Install]
WantedBy=multi-user.target
`

// LaunchdPlist is the macOS LaunchAgent: started at login (RunAtLoad),
// restarted whenever it exits (KeepAlive), at most every 5 s, with its
// output in the user's log directory (~/Library/Logs/rouse).
const LaunchdPlist = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>Label</key>
	<string>{{Name | html}}</string>
	<key>ProgramArguments</key>
	<array>
		<string>{{Path | html}}</string>
{{range Arguments}}		<string>{{. | html}}</string>
{{end}}	</array>
	<key>RunAtLoad</key>
	<true/>
	<key>KeepAlive</key>
	<true/>
	<key>ThrottleInterval</key>
	<integer>5</integer>
	<key>ProcessType</key>
	<string>Adaptive</string>
	<key>StandardOutPath</key>
	<string>{{StandardOutPath | html}}</string>
	<key>StandardErrorPath</key>
	<string>{{StandardErrorPath | html}}</string>
</dict>
</plist>
`

// Values are what a service file template is rendered with.
type Values struct {
	Name              string   // service name (launchd Label)
	Description       string   // defaults to Description
	Path              string   // absolute path of the rouse binary
	Arguments         []string // arguments after the binary
	StandardOutPath   string   // launchd only
	StandardErrorPath string   // launchd only
}

// Render renders one of the templates above exactly as kardianos/service
// v1.3.0 does: cmd quotes a word for systemd, cmdEscape escapes spaces in
// a path, html escapes for XML. Any other action is an error, so the
// templates cannot drift into syntax only one renderer knows.
func Render(tmpl string, v Values) (string, error) {
	if v.Path == "" {
		return "", errors.New("render service file: no executable path")
	}
	if v.Description == "" {
		v.Description = Description
	}
	repeat := func(item func(string) string) string {
		var b strings.Builder
		for _, a := range v.Arguments {
			b.WriteString(item(a))
		}
		return b.String()
	}
	r := strings.NewReplacer(
		"{{Description}}", v.Description,
		"{{Path | cmdEscape}}", cmdEscape(v.Path),
		"{{range Arguments}} {{. | cmd}}{{end}}", repeat(func(a string) string { return " " + cmdQuote(a) }),
		"{{Name | html}}", htmlEscape(v.Name),
		"{{Path | html}}", htmlEscape(v.Path),
		"{{range Arguments}}\t\t<string>{{. | html}}</string>\n{{end}}", repeat(func(a string) string { return "\t\t<string>" + htmlEscape(a) + "</string>\n" }),
		"{{StandardOutPath | html}}", htmlEscape(v.StandardOutPath),
		"{{StandardErrorPath | html}}", htmlEscape(v.StandardErrorPath),
	)
	out := r.Replace(tmpl)
	if i := strings.Index(out, "{{"); i >= 0 {
		end := min(len(out), i+40)
		return "", fmt.Errorf("render service file: unsupported template action near %q", out[i:end])
	}
	return out, nil
}

// The library's pipeline functions (service_linux.go, service_darwin.go).
func cmdQuote(s string) string  { return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"` }
func cmdEscape(s string) string { return strings.ReplaceAll(s, " ", `\x20`) }

var htmlEscaper = strings.NewReplacer(`&`, "&amp;", `'`, "&#39;", `<`, "&lt;", `>`, "&gt;", `"`, "&#34;")

func htmlEscape(s string) string { return htmlEscaper.Replace(s) }

// SystemArguments are the arguments of the system service on Linux: the
// config in /etc/rouse, the data in /var/lib/rouse.
var SystemArguments = []string{"run", "--config", "/etc/rouse/rouse.yaml", "--data", "/var/lib/rouse"}

// UserArguments are the arguments of a user service: XDG defaults.
var UserArguments = []string{"run"}

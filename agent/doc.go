// Package agent is rouse's orchestrator. It owns the lifecycle — boot,
// going to sleep, waking, shutdown — and the pieces that lifecycle needs:
// the dependency graph of components, their deadlines, the heartbeat that
// retries what is not ready, and the event stream. The store, the REST API
// and the config live in its sub-packages; components (trackers/*, the
// scheduler) never import it.
//
// Restore model. Every active component gets its own bring-up goroutine:
// it waits for its required dependencies to be ready (optional ones never
// block), then for the network if it needs it, then starts (or resumes)
// the component and waits for it to report ready, under its own deadline,
// which counts from the moment its dependencies were ready. A component not
// ready by then is degraded and goes on trying; only its dependents wait
// for it, and they stop waiting for this restore as soon as it is degraded
// or failed (the heartbeat starts them the moment it becomes ready). So
// each component starts the moment it can — not group by group — and the
// restore's duration is the critical path of the graph.
//
// Heartbeat. Failed components (their Run returned an error) are retried
// with capped exponential backoff and full jitter (internal/backoff): the
// wait is uniform in [0, min(max, initial·2^n)], which spreads components
// that failed together instead of retrying them in lock-step. The heartbeat
// is kicked — waits cut short — by a wake, a config change, the network
// coming back and any component becoming ready; with nothing to retry it
// sleeps on its channel and costs nothing. Degraded components are not
// restarted by the heartbeat: their own Run goes on trying, and killing an
// attempt that is about to succeed would be worse.
package agent

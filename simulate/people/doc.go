// Package people simulates the people of the demo city's work-order loop — grid workers
// (网格员), community supervisors (社区监督员), the streets' duty posts (街道监督员), the command
// centre's operator (值班员) and supervisor, and the 12345 call-back desk (回访) — so that
// `serve --demo` shows the whole loop: incidents are signed for, worked on, resolved with
// evidence, verified, closed and called back, and every stage KPI moves.
//
// Each person acts only through the public HTTP API with a token of their own (role, subject
// and scope as a real deployment would issue them), at human pace scaled by Config.Pace, and
// obeys the API's rate limits (429 and Retry-After). The package must never import the
// processing path (incidents, dispatch, storage, transport, app): it is a client, and a test
// holds it to that. It knows the city only from the roster a real deployment also publishes.
package people

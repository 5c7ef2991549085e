// Package dispatch decides who owns a new incident (派遣): the on-duty grid worker (网格员) of
// the incident's grid with the fewest open incidents, else an on-duty worker of a neighbouring
// grid, else the community supervisor (社区监督员), together with the agency that owns the
// category in the 权责清单. It follows the city.incidents changelog to keep each worker's load,
// and acts on every new incident by publishing a dispatch command for the incidents service to
// apply and a Dispatch record saying why. An incident without a grid is left new for an
// operator to triage.
//
// It never changes an incident itself: the incidents service is the only writer, and the
// deterministic command id "dispatch:<incident>" makes a repeated decision harmless there.
// It never imports the transport; it publishes through Publisher.
package dispatch

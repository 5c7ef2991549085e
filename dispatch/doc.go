// Package dispatch decides who owns an incident (派遣): the on-duty grid worker (网格员) of
// the incident's grid with the fewest open incidents, else an on-duty worker of a neighbouring
// grid of the same community, street or district (nearest first; never of another district),
// else the community supervisor (社区监督员), together with the agency that owns the
// category in the 权责清单. It follows the city.incidents changelog to keep each worker's load,
// and answers every new incident with a dispatch command for the incidents service to apply
// and a Dispatch record saying why. An incident without a grid is left new for an
// operator to triage.
//
// It also runs the rounds after the first dispatch (workflow.go): a return (退单) comes back
// with its reason and goes to someone who has not returned it, and after MaxReturns to the
// street supervisor instead of bouncing again; a dispatch not signed for in time is reassigned
// to someone who has not let it lapse, then to the community and street supervisors, and
// finally escalated to the district.
//
// It never changes an incident itself: the incidents service is the only writer, and
// deterministic command ids ("dispatch:<incident>", "dispatch:<incident>@<version>",
// "reassign:<incident>@<version>") make a repeated decision harmless there. It never imports
// the transport and never chooses a topic: its handler returns the command and the record.
package dispatch

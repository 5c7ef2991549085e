package api

import (
	"net/http"
	"time"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
)

// cityGrid is one grid of GET /api/v1/city: where it is and who is posted to it, what an
// operator reads off the map and the duty roster to place an ungridded report (triage).
type cityGrid struct {
	Code          string       `json:"code"`
	Name          string       `json:"name"`
	Community     string       `json:"community"`
	CommunityName string       `json:"community_name"`
	Street        string       `json:"street"`
	StreetName    string       `json:"street_name"`
	District      string       `json:"district"`
	DistrictName  string       `json:"district_name"`
	Centroid      event.Point  `json:"centroid"`
	Workers       []cityWorker `json:"workers"`
}

// cityWorker is a roster entry: staff, not a citizen, so the name is shown; the phone (personal
// data) is not part of the answer.
type cityWorker struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Role   string `json:"role"`
	OnDuty bool   `json:"on_duty"`
}

type cityEntry struct {
	Code string `json:"code"`
	Name string `json:"name"`
}

// cityCategory is a problem category and the agency it goes to by default (dispatch's choice,
// which the desk preselects).
type cityCategory struct {
	cityEntry
	Agency string `json:"agency,omitempty"`
}

// cityMap answers GET /api/v1/city: the grids of the caller's scope with their roster and who
// is on duty now, the agencies and the problem categories (the desk's pick lists).
func (s *Server) cityMap(w http.ResponseWriter, r *http.Request) {
	claims, _ := auth.FromContext(r.Context())
	now := time.Now()
	grids := []cityGrid{}
	for _, g := range s.city.Grids() {
		if !claims.CanSeeIncident(event.Incident{Area: g.Area()}) {
			continue
		}
		cg := cityGrid{Code: g.Code, Name: g.Name, Community: g.Community, CommunityName: g.CommunityName,
			Street: g.Street, StreetName: g.StreetName, District: g.District, DistrictName: g.DistrictName,
			Centroid: g.Centroid, Workers: []cityWorker{}}
		roster := s.city.Workers(g.Code)
		if s, ok := s.city.Supervisor(g.Community); ok {
			roster = append(roster, s)
		}
		for _, wk := range roster {
			cg.Workers = append(cg.Workers, cityWorker{ID: wk.ID, Name: wk.Name, Role: wk.Role, OnDuty: wk.OnDuty(now)})
		}
		grids = append(grids, cg)
	}
	agencies := []cityEntry{}
	for _, ag := range s.city.Agencies() {
		agencies = append(agencies, cityEntry{ag.Code, ag.Name})
	}
	categories := []cityCategory{}
	for _, c := range s.city.Categories() {
		categories = append(categories, cityCategory{cityEntry{c.Code, c.Name}, c.Agency})
	}
	writeJSON(w, http.StatusOK, CityAnswer{Grids: grids, Agencies: agencies, Categories: categories})
}

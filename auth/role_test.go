package auth_test

import (
	"testing"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
)

func TestRoleTable(t *testing.T) {
	t.Parallel()
	perms := []auth.Permission{auth.PermIngest, auth.PermReadIncidents, auth.PermCommand,
		auth.PermSeePersonalData, auth.PermRules, auth.PermCockpit, auth.PermAccount, auth.PermUsers}
	// Columns in the order of perms: ingest, read, command, personal data, rules, cockpit,
	// own session, accounts.
	want := map[auth.Role][8]bool{
		auth.RoleAdmin:      {true, true, true, true, true, true, true, true},
		auth.RoleOperator:   {false, true, true, false, false, true, true, false},
		auth.RoleSupervisor: {false, true, true, true, false, true, true, false},
		auth.RoleWorker:     {false, true, true, false, false, true, true, false},
		auth.RoleRuleAuthor: {false, true, false, false, true, true, true, false},
		auth.RoleViewer:     {false, true, false, false, false, true, true, false},
		auth.RoleIngest:     {true, false, false, false, false, false, false, false},
		"root":              {},
		"":                  {},
	}
	for role, row := range want {
		for i, p := range perms {
			if got := auth.Can(role, p); got != row[i] {
				t.Errorf("Can(%q, %s) = %v, want %v", role, p, got, row[i])
			}
		}
	}
	if n := len(auth.ValidRoles()); n != 7 {
		t.Errorf("ValidRoles has %d roles, want 7", n)
	}
	for _, r := range auth.ValidRoles() {
		if _, ok := want[r]; !ok {
			t.Errorf("role %q missing from the test table", r)
		}
	}
}

func TestParseRole(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]auth.Role{
		"operator":     auth.RoleOperator,
		" Supervisor ": auth.RoleSupervisor,
		"RULE_AUTHOR":  auth.RoleRuleAuthor,
	} {
		got, err := auth.ParseRole(in)
		if err != nil || got != want {
			t.Errorf("ParseRole(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "root", "operators"} {
		if got, err := auth.ParseRole(bad); err == nil {
			t.Errorf("ParseRole(%q) = %q, want error", bad, got)
		}
	}
}

func TestCanSee(t *testing.T) {
	t.Parallel()
	inG1 := event.Area{District: "D1", Street: "S1", Grid: "G1"}
	inG2 := event.Area{District: "D1", Street: "S1", Grid: "G2"}
	inD2 := event.Area{District: "D2", Street: "S9", Grid: "G9"}
	noGrid := event.Area{District: "D1", Street: "S1"}
	cases := []struct {
		name string
		c    auth.Claims
		area event.Area
		want bool
	}{
		{"admin anywhere", auth.Claims{Role: auth.RoleAdmin, District: "D1"}, inD2, true},
		{"worker own grid", auth.Claims{Role: auth.RoleWorker, Grids: []string{"G1", "G3"}}, inG1, true},
		{"worker other grid", auth.Claims{Role: auth.RoleWorker, Grids: []string{"G1", "G3"}}, inG2, false},
		{"worker no grid on area", auth.Claims{Role: auth.RoleWorker, Grids: []string{"G1"}}, noGrid, false},
		{"worker without grids", auth.Claims{Role: auth.RoleWorker, District: "D1"}, inG1, false},
		{"district operator own", auth.Claims{Role: auth.RoleOperator, District: "D1"}, inG2, true},
		{"district operator other", auth.Claims{Role: auth.RoleOperator, District: "D1"}, inD2, false},
		{"city operator", auth.Claims{Role: auth.RoleOperator}, inD2, true},
		{"district supervisor other", auth.Claims{Role: auth.RoleSupervisor, District: "D1"}, inD2, false},
		{"city supervisor", auth.Claims{Role: auth.RoleSupervisor}, inD2, true},
		{"district viewer other", auth.Claims{Role: auth.RoleViewer, District: "D2"}, inG1, false},
		{"rule author", auth.Claims{Role: auth.RoleRuleAuthor}, inG1, true},
		{"ingest", auth.Claims{Role: auth.RoleIngest}, inG1, false},
		{"unknown role", auth.Claims{Role: "root"}, inG1, false},
	}
	for _, tc := range cases {
		if got := tc.c.CanSee(tc.area); got != tc.want {
			t.Errorf("%s: CanSee = %v, want %v", tc.name, got, tc.want)
		}
	}
}

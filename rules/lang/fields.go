package lang

import (
	"reflect"
	"slices"
	"strings"
)

// EnvField is one path an expression may read, for the rule studio's completion: "sensor.kind",
// "area.district", with its Go type as the checker sees it.
type EnvField struct {
	Path string `json:"path"`
	Type string `json:"type"`
	// RaiseOnly: readable only in a rule's raise fields (window.count), not in when.
	RaiseOnly bool `json:"raise_only,omitempty"`
}

// Function is one function an expression may call.
type Function struct {
	Name      string `json:"name"`
	Signature string `json:"signature"`
	Doc       string `json:"doc,omitempty"`
}

// Fields are the paths of the environment of event type t (EnvFor), sorted; nil for a type
// rules cannot listen to. They come from the same structs expressions are compiled against,
// so completion offers exactly what compiles.
func Fields(t string) []EnvField {
	env := EnvFor(t)
	if env == nil {
		return nil
	}
	var out []EnvField
	walkFields(reflect.TypeOf(env), "", false, &out)
	slices.SortFunc(out, func(a, b EnvField) int { return strings.Compare(a.Path, b.Path) })
	return out
}

func walkFields(t reflect.Type, prefix string, raiseOnly bool, out *[]EnvField) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name := f.Tag.Get("expr")
		if f.Anonymous && name == "" {
			walkFields(f.Type, prefix, raiseOnly, out)
			continue
		}
		if name == "" {
			continue
		}
		path := prefix + name
		ro := raiseOnly || (prefix == "" && name == "window")
		ft := f.Type
		if ft.Kind() == reflect.Struct && ft.PkgPath() == reflect.TypeFor[Common]().PkgPath() {
			*out = append(*out, EnvField{Path: path, Type: "object", RaiseOnly: ro})
			walkFields(ft, path+".", ro, out)
			continue
		}
		*out = append(*out, EnvField{Path: path, Type: ft.String(), RaiseOnly: ro})
	}
}

// Functions are the functions of BaseOptions besides expr's allowed builtins (Builtins), with
// their signatures as an author writes them.
var Functions = []Function{
	{"contains_any", "contains_any(text string, words ...string) bool", "包含任意关键词"},
	{"hour", "hour(t time) int", "北京时间的小时 0..23"},
	{"weekday", "weekday(t time) int", "北京时间星期几 1(周一)..7(周日)"},
	{"distance_m", "distance_m(lat1, lon1, lat2, lon2 float) float", "两点球面距离（米）"},
	{"in_area", "in_area(area, name string) bool", "事件是否在某区/街道/社区/网格内（编码或名称）"},
	{"in_polygon", "in_polygon(lat, lon float, ring [[lon, lat], …]) bool", "点是否在多边形内（WGS-84）"},
}

// Builtins are expr's builtins a rule may call.
func Builtins() []string { return slices.Clone(allowedBuiltins) }

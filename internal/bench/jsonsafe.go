package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
)

// MarshalJSON encodes v as indented JSON with every NaN or infinite float
// (a figure that could not be measured) as null, which encoding/json
// refuses to do itself.
func MarshalJSON(v any) ([]byte, error) {
	return json.MarshalIndent(jsonValue(reflect.ValueOf(v)), "", "  ")
}

func jsonValue(v reflect.Value) any {
	switch v.Kind() {
	case reflect.Invalid:
		return nil
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return jsonValue(v.Elem())
	case reflect.Float32, reflect.Float64:
		f := v.Float()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil
		}
		return f
	case reflect.Struct:
		if _, ok := v.Interface().(json.Marshaler); ok {
			return v.Interface()
		}
		out := map[string]any{}
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			fv := v.Field(i)
			if strings.Contains(opts, "omitempty") && fv.IsZero() {
				continue
			}
			out[name] = jsonValue(fv)
		}
		return out
	case reflect.Map:
		if v.IsNil() {
			return nil
		}
		out := map[string]any{}
		it := v.MapRange()
		for it.Next() {
			k := it.Key()
			key, ok := k.Interface().(string)
			if !ok {
				b, _ := json.Marshal(k.Interface())
				key = strings.Trim(string(b), `"`)
			}
			out[key] = jsonValue(it.Value())
		}
		return out
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() {
			return nil
		}
		out := make([]any, v.Len())
		for i := range out {
			out[i] = jsonValue(v.Index(i))
		}
		return out
	default:
		return v.Interface()
	}
}

// UnmarshalJSON decodes what MarshalJSON wrote into v, a null float
// becoming NaN again.
func UnmarshalJSON(data []byte, v any) error {
	var raw any
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return errors.New("bench: UnmarshalJSON needs a non-nil pointer")
	}
	return fromJSON(raw, rv.Elem())
}

func fromJSON(raw any, v reflect.Value) error {
	if raw == nil {
		switch v.Kind() {
		case reflect.Float32, reflect.Float64:
			v.SetFloat(math.NaN())
		default:
			v.SetZero()
		}
		return nil
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		return fromJSON(raw, v.Elem())
	case reflect.Struct:
		m, ok := raw.(map[string]any)
		if !ok {
			return fmt.Errorf("bench: %s: want an object", v.Type())
		}
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if val, ok := m[name]; ok {
				if err := fromJSON(val, v.Field(i)); err != nil {
					return err
				}
			}
		}
		return nil
	case reflect.Map:
		m, ok := raw.(map[string]any)
		if !ok {
			return fmt.Errorf("bench: %s: want an object", v.Type())
		}
		out := reflect.MakeMapWithSize(v.Type(), len(m))
		for k, val := range m {
			kv := reflect.New(v.Type().Key()).Elem()
			if kv.Kind() == reflect.String {
				kv.SetString(k)
			} else if err := json.Unmarshal([]byte(k), kv.Addr().Interface()); err != nil {
				return err
			}
			ev := reflect.New(v.Type().Elem()).Elem()
			if err := fromJSON(val, ev); err != nil {
				return err
			}
			out.SetMapIndex(kv, ev)
		}
		v.Set(out)
		return nil
	case reflect.Slice:
		l, ok := raw.([]any)
		if !ok {
			return fmt.Errorf("bench: %s: want an array", v.Type())
		}
		out := reflect.MakeSlice(v.Type(), len(l), len(l))
		for i, val := range l {
			if err := fromJSON(val, out.Index(i)); err != nil {
				return err
			}
		}
		v.Set(out)
		return nil
	default:
		// Scalars: let encoding/json convert (numbers into ints, strings).
		b, err := json.Marshal(raw)
		if err != nil {
			return err
		}
		return json.Unmarshal(b, v.Addr().Interface())
	}
}

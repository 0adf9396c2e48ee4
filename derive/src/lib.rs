//! Derive macros of [auditring](https://docs.rs/auditring): use them
//! through the library, as `auditring::Payload` and `auditring::JsonValue`,
//! where they are documented with examples.
//!
//! `#[derive(Payload)]` on a struct of inline strings, integers, enums and
//! other [`JsonValue`]s generates the slot-reuse `Payload` implementation
//! (`clear`), a `Clone` whose `clone_from` copies only the bytes in use,
//! an accessor and a setter with a truncation mark for each `InlineStr`
//! field, an accessor for the `Truncated<Self>` marks, and an `EncodeJson` implementation that writes the fields in
//! declaration order as one JSON object, constant fragments as
//! precomputed byte strings, applying redaction rules while encoding.
//!
//! `#[derive(JsonValue)]` on an enum of unit variants writes each variant
//! as its snake_case name, a JSON string.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, Ident, LitByteStr, LitStr, Type};

/// Derives `auditring::Payload`, `Clone`, `auditring::EncodeJson` and
/// `auditring::StringFields`, plus an accessor and a setter per
/// `InlineStr` field. See `auditring::Payload` for the attributes.
#[proc_macro_derive(Payload, attributes(payload))]
pub fn derive_payload(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as DeriveInput);
    payload(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Derives `auditring::JsonValue` for an enum of unit variants: each
/// variant is written as a JSON string, its name in snake_case unless
/// `#[payload(rename = "...")]` says otherwise.
#[proc_macro_derive(JsonValue, attributes(payload))]
pub fn derive_json_value(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as DeriveInput);
    json_value(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// What a field is to the payload.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// An `InlineStr<N>`: accessor, setter, truncation bit.
    Str,
    /// The `Truncated<Self>` marks.
    Truncated,
    /// Anything else that implements `JsonValue`.
    Value,
}

struct Field<'a> {
    ident: &'a Ident,
    ty: &'a Type,
    kind: Kind,
    /// The JSON key.
    key: String,
    skip: bool,
    redactable: bool,
    docs: Vec<&'a syn::Attribute>,
}

#[derive(Default)]
struct FieldAttrs {
    rename: Option<String>,
    skip: bool,
    no_redact: bool,
}

fn field_attrs(attrs: &[syn::Attribute]) -> syn::Result<FieldAttrs> {
    let mut out = FieldAttrs::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("payload")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("rename") {
                let name: LitStr = meta.value()?.parse()?;
                out.rename = Some(name.value());
            } else if meta.path.is_ident("skip") {
                out.skip = true;
            } else if meta.path.is_ident("no_redact") {
                out.no_redact = true;
            } else {
                return Err(meta.error(
                    "unknown payload attribute: expected `rename = \"...\"`, `skip` or `no_redact`",
                ));
            }
            Ok(())
        })?;
    }
    Ok(out)
}

/// The last path segment's name of a type, if it is a path.
fn type_name(ty: &Type) -> Option<String> {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().map(|s| s.ident.to_string()),
        Type::Group(g) => type_name(&g.elem),
        Type::Paren(p) => type_name(&p.elem),
        _ => None,
    }
}

/// Appends `s` as the body of a JSON string, escaped exactly as
/// auditring's writer does (`"`, `\`, control characters below 0x20).
fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
}

fn bytes(s: &str) -> LitByteStr {
    LitByteStr::new(s.as_bytes(), Span::call_site())
}

fn payload(input: &DeriveInput) -> syn::Result<TokenStream2> {
    let mut serialize = false;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("payload")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("serialize") {
                serialize = true;
                Ok(())
            } else {
                Err(meta.error("unknown payload attribute: expected `serialize`"))
            }
        })?;
    }
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new(
            input.span(),
            "#[derive(Payload)] needs a struct with named fields",
        ));
    };
    let Fields::Named(named) = &data.fields else {
        return Err(syn::Error::new(
            input.span(),
            "#[derive(Payload)] needs a struct with named fields",
        ));
    };
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new(
            input.generics.span(),
            "#[derive(Payload)] does not support generic payloads: a payload is one fixed-size type",
        ));
    }
    let mut fields = Vec::new();
    for f in &named.named {
        let attrs = field_attrs(&f.attrs)?;
        let ident = f.ident.as_ref().expect("named field");
        let kind = match type_name(&f.ty).as_deref() {
            Some("InlineStr") => Kind::Str,
            Some("Truncated") => Kind::Truncated,
            _ => Kind::Value,
        };
        let key = attrs.rename.unwrap_or_else(|| {
            let name = ident.to_string();
            name.strip_prefix("r#").map(str::to_owned).unwrap_or(name)
        });
        fields.push(Field {
            ident,
            ty: &f.ty,
            kind,
            key,
            skip: attrs.skip,
            redactable: !attrs.no_redact,
            docs: f
                .attrs
                .iter()
                .filter(|a| a.path().is_ident("doc"))
                .collect(),
        });
    }
    let truncated: Vec<&Field> = fields
        .iter()
        .filter(|f| f.kind == Kind::Truncated)
        .collect();
    if truncated.len() > 1 {
        return Err(syn::Error::new(
            truncated[1].ident.span(),
            "a payload has at most one `Truncated<Self>` field",
        ));
    }
    let strings: Vec<&Field> = fields
        .iter()
        .filter(|f| f.kind == Kind::Str && !f.skip)
        .collect();
    if strings.len() > 64 {
        return Err(syn::Error::new(
            strings[64].ident.span(),
            "a payload has at most 64 inline string fields (one truncation bit each)",
        ));
    }
    let truncated = truncated.first().map(|f| f.ident);
    if truncated.is_none() && !strings.is_empty() {
        return Err(syn::Error::new(
            input.ident.span(),
            "a payload with `InlineStr` fields needs a `truncated: Truncated<Self>` field, so that a cut value is never silent",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for f in fields.iter().filter(|f| !f.skip) {
        if !seen.insert(f.key.as_str()) {
            return Err(syn::Error::new(
                f.ident.span(),
                format!("two fields are written as the JSON key `{}`", f.key),
            ));
        }
    }

    let name = &input.ident;
    let vis = &input.vis;
    let krate = quote!(::auditring);

    // Payload::clear and Clone.
    let clears = fields.iter().map(|f| {
        let id = f.ident;
        match f.kind {
            Kind::Str | Kind::Truncated => quote!(self.#id.clear();),
            Kind::Value => quote!(self.#id = ::core::default::Default::default();),
        }
    });
    let clones = fields.iter().map(|f| {
        let id = f.ident;
        quote!(#id: ::core::clone::Clone::clone(&self.#id),)
    });
    let clone_froms = fields.iter().map(|f| {
        let id = f.ident;
        match f.kind {
            Kind::Str => quote!(self.#id.copy_from(&source.#id);),
            _ => quote!(::core::clone::Clone::clone_from(&mut self.#id, &source.#id);),
        }
    });

    // Accessors and setters.
    let accessors = strings.iter().enumerate().map(|(bit, f)| {
        let id = f.ident;
        let ty = f.ty;
        let setter = format_ident!("set_{}", id.to_string().trim_start_matches("r#"));
        let docs = &f.docs;
        let fallback = (docs.is_empty()).then(|| {
            let text = format!("The `{}` field.", f.key);
            quote!(#[doc = #text])
        });
        let setter_doc = format!(
            "Sets `{}`; a value longer than the field's capacity is cut at a UTF-8 boundary and the field is marked truncated (a later value that fits clears the mark).",
            f.key
        );
        let truncated = truncated.expect("checked above");
        quote! {
            #(#docs)*
            #fallback
            #[inline]
            #vis fn #id(&self) -> &str {
                self.#id.as_str()
            }

            #[doc = #setter_doc]
            #[inline]
            #vis fn #setter(&mut self, value: &str) -> &mut Self {
                let cut = <#ty>::set(&mut self.#id, value);
                self.#truncated.mark(#bit, cut);
                self
            }
        }
    });
    let names = strings.iter().map(|f| f.key.as_str());
    // The accessor's return type also checks that the marks name this
    // payload's fields (`Truncated` alone would name `AuditPayload`'s).
    let truncated_accessor = fields.iter().find(|f| f.kind == Kind::Truncated).map(|f| {
        let id = f.ident;
        quote! {
            /// Which inline string fields were cut to fit their capacity.
            #[inline]
            #vis fn #id(&self) -> #krate::Truncated<Self> {
                self.#id
            }
        }
    });

    // The encoder: constant fragments, then each value.
    let encoded: Vec<&Field> = fields.iter().filter(|f| !f.skip).collect();
    let mut fast = Vec::new();
    let mut pending = String::from("{");
    for (i, f) in encoded.iter().enumerate() {
        if i > 0 {
            pending.push(',');
        }
        pending.push('"');
        escape_into(&mut pending, &f.key);
        pending.push_str("\":");
        let id = f.ident;
        let ty = f.ty;
        if f.kind == Kind::Str {
            // The opening quote joins the key fragment; the body is
            // escaped in place.
            pending.push('"');
            let lit = bytes(&pending);
            fast.push(quote! {
                out.extend_from_slice(#lit);
                <#ty>::write_json_body(&self.#id, out);
            });
            pending = String::from("\"");
        } else {
            let lit = bytes(&pending);
            fast.push(quote! {
                out.extend_from_slice(#lit);
                #krate::JsonValue::write_json_value(&self.#id, out);
            });
            pending.clear();
        }
    }
    pending.push('}');
    let lit = bytes(&pending);
    fast.push(quote!(out.extend_from_slice(#lit);));
    let slow = encoded.iter().map(|f| {
        let id = f.ident;
        let key = &f.key;
        if f.redactable {
            quote!(object.field(#key, &self.#id);)
        } else {
            quote!(object.field_unredacted(#key, &self.#id);)
        }
    });
    let redactable = encoded
        .iter()
        .filter(|f| f.redactable)
        .map(|f| f.key.as_str());

    let serde_impl = serialize.then(|| {
        let count = encoded.len();
        let name_str = name.to_string();
        let members = encoded.iter().map(|f| {
            let id = f.ident;
            let key = &f.key;
            quote!(<S::SerializeStruct as #krate::__private::serde::ser::SerializeStruct>::serialize_field(&mut s, #key, &self.#id)?;)
        });
        quote! {
            /// The same object as the JSON encoder writes (without
            /// redaction), through serde.
            impl #krate::__private::serde::Serialize for #name {
                fn serialize<S: #krate::__private::serde::Serializer>(
                    &self,
                    serializer: S,
                ) -> ::core::result::Result<S::Ok, S::Error> {
                    let mut s = serializer.serialize_struct(#name_str, #count)?;
                    #(#members)*
                    <S::SerializeStruct as #krate::__private::serde::ser::SerializeStruct>::end(s)
                }
            }
        }
    });

    Ok(quote! {
        impl #krate::Payload for #name {
            #[inline]
            fn clear(&mut self) {
                #(#clears)*
            }
        }

        impl ::core::clone::Clone for #name {
            fn clone(&self) -> Self {
                Self { #(#clones)* }
            }

            /// Copies only the bytes in use of each inline string.
            #[inline]
            fn clone_from(&mut self, source: &Self) {
                #(#clone_froms)*
            }
        }

        impl #krate::StringFields for #name {
            const NAMES: &'static [&'static str] = &[#(#names),*];
        }

        impl #name {
            #(#accessors)*
            #truncated_accessor
        }

        impl #krate::EncodeJson for #name {
            const REDACTABLE: &'static [&'static str] = &[#(#redactable),*];

            #[inline]
            fn write_json(&self, out: &mut ::std::vec::Vec<u8>, redactor: &#krate::format::encode::Redactor) {
                if redactor.is_empty() {
                    #(#fast)*
                } else {
                    let mut object = #krate::format::encode::JsonObject::new(out, redactor);
                    #(#slow)*
                    object.finish();
                }
            }
        }

        #serde_impl
    })
}

fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn json_value(input: &DeriveInput) -> syn::Result<TokenStream2> {
    let Data::Enum(data) = &input.data else {
        return Err(syn::Error::new(
            input.span(),
            "#[derive(JsonValue)] needs an enum of unit variants",
        ));
    };
    let name = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let mut arms = Vec::new();
    let mut text_arms = Vec::new();
    for v in &data.variants {
        if !matches!(v.fields, Fields::Unit) {
            return Err(syn::Error::new(
                v.span(),
                "#[derive(JsonValue)] needs unit variants: each is written as its name",
            ));
        }
        let attrs = field_attrs(&v.attrs)?;
        if attrs.skip || attrs.no_redact {
            return Err(syn::Error::new(
                v.span(),
                "a variant takes only `#[payload(rename = \"...\")]`",
            ));
        }
        let text = attrs
            .rename
            .unwrap_or_else(|| snake_case(&v.ident.to_string()));
        let mut json = String::from("\"");
        escape_into(&mut json, &text);
        json.push('"');
        let lit = bytes(&json);
        let id = &v.ident;
        arms.push(quote!(Self::#id => out.extend_from_slice(#lit),));
        text_arms.push(quote!(Self::#id => #text,));
    }
    let krate = quote!(::auditring);
    let body = if arms.is_empty() {
        quote!(match *self {})
    } else {
        // One constant copy per variant: no copy of a length known only
        // at run time.
        quote!(match self { #(#arms)* })
    };
    let text = if text_arms.is_empty() {
        quote!(match *self {})
    } else {
        quote!(::core::option::Option::Some(match self { #(#text_arms)* }))
    };
    Ok(quote! {
        impl #impl_generics #krate::JsonValue for #name #ty_generics #where_clause {
            #[inline]
            fn write_json_value(&self, out: &mut ::std::vec::Vec<u8>) {
                #body
            }

            #[inline]
            fn json_str(&self) -> ::core::option::Option<&str> {
                #text
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_of_variant_names() {
        assert_eq!(snake_case("Allow"), "allow");
        assert_eq!(snake_case("InvalidArgs"), "invalid_args");
        assert_eq!(snake_case("CapDenied"), "cap_denied");
    }

    #[test]
    fn keys_escape_as_the_writer_does() {
        let mut s = String::new();
        escape_into(&mut s, "a\"b\\c\n\u{1}é");
        assert_eq!(s, "a\\\"b\\\\c\\n\\u0001é");
    }
}

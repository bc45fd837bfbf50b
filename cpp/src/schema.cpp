// The schema fingerprint (see schema.hpp). One set-based catalog query per kind of object, all
// in one snapshot; the server's own deparsers (format_type, pg_get_*def, pg_get_expr) produce
// the definitions, under fixed settings so that the text depends only on the schema.
#include "pgsafe/schema.hpp"

#include <algorithm>
#include <cstdio>
#include <string_view>
#include <tuple>
#include <utility>

#include "pgsafe/checksum.hpp"
#include "pgsafe/errors.hpp"
#include "pgsafe/log.hpp"

namespace pgsafe {

namespace {

constexpr std::string_view kFormatLine = "pgsafe-schema-fingerprint 1\n";

// Which schemas count, for a pg_namespace row aliased `n`; $1 is the text[] of exclusions.
// Users cannot create schemas named pg_*, so the prefix covers pg_catalog, pg_toast and every
// pg_temp_N / pg_toast_temp_N.
constexpr std::string_view kNsFilter =
    "n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'"
    " AND n.nspname <> ALL ($1::text[])";

// Objects created by CREATE EXTENSION are described by the extension's name and version, as
// pg_dump does, not one by one.
std::string not_extension_member(std::string_view catalog, std::string_view oid) {
  return std::string(" AND NOT EXISTS (SELECT FROM pg_depend e WHERE e.classid = '")
      .append(catalog)
      .append("'::regclass AND e.objid = ")
      .append(oid)
      .append(" AND e.deptype = 'e')");
}

// The objects of the schemas that count (kNsFilter), less those of extensions: `catalog` is
// the objects' catalog, `oid` the column of their oid.
std::string in_user_schemas(std::string_view catalog, std::string_view oid) {
  return std::string(kNsFilter) + not_extension_member(catalog, oid);
}

std::string qualified(std::string_view ns, std::string_view name) {
  return std::string("quote_ident(").append(ns).append(") || '.' || quote_ident(").append(name) +
         ")";
}

std::string role_name(std::string_view oid) {
  return std::string("CASE WHEN ")
      .append(oid)
      .append(" = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(")
      .append(oid)
      .append(")) END");
}

// Grants as sorted lines "grant P, Q to ROLE [with grant option] (by GRANTOR)" from an aclitem[]
// expression. Callers pass NULL ACLs through acldefault() (see acl_or_default), so a GRANT
// followed by the matching REVOKE reads the same as never having granted.
std::string acl_sql(std::string_view acl) {
  return std::string(
             "(SELECT string_agg(acl_g.line, E'\\n' ORDER BY acl_g.line COLLATE \"C\") FROM ("
             "SELECT 'grant ' || string_agg(acl_e.privilege_type, ', '"
             " ORDER BY acl_e.privilege_type COLLATE \"C\") || ' to ' || ")
      .append(role_name("acl_e.grantee"))
      .append(
          " || CASE WHEN acl_e.is_grantable THEN ' with grant option' ELSE '' END || ' (by ' || ")
      .append(role_name("acl_e.grantor"))
      .append(" || ')' AS line FROM aclexplode(")
      .append(acl)
      .append(") acl_e GROUP BY acl_e.grantee, acl_e.grantor, acl_e.is_grantable) acl_g)");
}

std::string acl_or_default(std::string_view acl, char objtype, std::string_view owner) {
  return acl_sql(std::string("coalesce(")
                     .append(acl)
                     .append(", acldefault('")
                     .append(1, objtype)
                     .append("', ")
                     .append(owner)
                     .append("))"));
}

// Sorted, comma-separated text[] (reloptions and the like).
std::string sorted_options(std::string_view array) {
  return std::string("array_to_string(ARRAY(SELECT o FROM unnest(")
      .append(array)
      .append(") o ORDER BY o COLLATE \"C\"), ', ')");
}

// A definition: "key: value" lines in a fixed order, empty values left out, so an object that
// gains a property gains a line.
class Definition {
 public:
  void line(std::string_view key, std::string_view value) {
    if (value.empty()) return;
    text_.append(key).append(": ").append(value).append("\n");
  }
  // A column of the result as is (NULL and empty alike leave the line out).
  void field(std::string_view key, const Value& value) { line(key, value.value_or("")); }
  void flag(std::string_view key, const Value& value) { line(key, value == "t" ? "yes" : "no"); }
  // Whole lines as they come (grants, deparsed DDL), each ending in a newline.
  void block(const Value& text) {
    if (!text || text->empty()) return;
    text_.append(*text);
    if (text_.back() != '\n') text_ += '\n';
  }
  // The owner, comment and grants lines most objects end with, in that order.
  void ownership(const Value& owner, const Value& comment, const Value& grants = std::nullopt) {
    field("owner", owner);
    field("comment", comment);
    block(grants);
  }
  std::string take() { return std::move(text_); }

 private:
  std::string text_;
};

const std::string& get(const Row& row, size_t i) {
  static const std::string kEmpty;
  return row[i] ? *row[i] : kEmpty;
}

// tgenabled / ev_enabled: when session_replication_role lets the trigger or rule fire.
std::string_view enabled_name(const std::string& code) {
  return code == "D" ? "disabled" : code == "R" ? "replica" : code == "A" ? "always" : "origin";
}

class Reader {
 public:
  Reader(Connection& conn, std::string excluded, int server_version)
      : conn_(conn), excluded_(std::move(excluded)), version_(server_version) {}

  std::vector<SchemaObject> read() {
    schemas();
    extensions();
    tables();
    columns();
    constraints();
    indexes();
    views();
    sequences();
    functions();
    triggers();
    policies();
    rules();
    types();
    collations();
    statistics();
    default_privileges();
    return std::move(objects_);
  }

 private:
  Result query(const std::string& sql) { return conn_.execute(sql, {excluded_}); }
  // One object per row of `result`, named by its first column: `describe` writes the row's
  // definition and returns the object's kind.
  template <typename Describe>
  void each(const Result& result, Describe describe) {
    for (const Row& row : result.rows) {
      Definition d;
      std::string kind = describe(row, d);
      objects_.push_back({std::move(kind), row[0].value_or(""), d.take()});
    }
  }

  void schemas() {
    Result r = query("SELECT quote_ident(n.nspname), pg_get_userbyid(n.nspowner), " +
                     acl_or_default("n.nspacl", 'n', "n.nspowner") +
                     ", obj_description(n.oid, 'pg_namespace') FROM pg_namespace n WHERE " +
                     in_user_schemas("pg_namespace", "n.oid"));
    each(r, [](const Row& row, Definition& d) {
      d.ownership(row[1], row[3], row[2]);
      return "schema";
    });
  }

  void extensions() {
    // Extensions are database-wide: listed whatever schema they live in.
    Result r = conn_.execute(
        "SELECT quote_ident(x.extname), x.extversion, quote_ident(n.nspname)"
        " FROM pg_extension x JOIN pg_namespace n ON n.oid = x.extnamespace");
    each(r, [](const Row& row, Definition& d) {
      d.field("version", row[1]);
      d.field("schema", row[2]);
      return "extension";
    });
  }

  void tables() {
    Result r = query(
        "SELECT " + qualified("n.nspname", "c.relname") +
        ", c.relkind, c.relpersistence,"
        " CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END,"
        " (SELECT string_agg(" +
        qualified("pn.nspname", "pc.relname") +
        ", ', ' ORDER BY i.inhseqno) FROM pg_inherits i JOIN pg_class pc ON pc.oid = i.inhparent"
        " JOIN pg_namespace pn ON pn.oid = pc.relnamespace WHERE i.inhrelid = c.oid),"
        " CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END,"
        " (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) FROM pg_attribute a"
        " WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),"
        " c.relrowsecurity, c.relforcerowsecurity, c.relreplident, " +
        sorted_options("c.reloptions") +
        ", (SELECT amname FROM pg_am WHERE oid = c.relam AND amname <> 'heap'),"
        " (SELECT quote_ident(spcname) FROM pg_tablespace WHERE oid = c.reltablespace),"
        " (SELECT quote_ident(s.srvname) || coalesce(' (' || " +
        sorted_options("ft.ftoptions") +
        " || ')', '') FROM pg_foreign_table ft JOIN pg_foreign_server s ON s.oid = ft.ftserver"
        " WHERE ft.ftrelid = c.oid),"
        " pg_get_userbyid(c.relowner), " +
        acl_or_default("c.relacl", 'r', "c.relowner") +
        ", obj_description(c.oid, 'pg_class')"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind IN ('r', 'p', 'f') AND " +
        in_user_schemas("pg_class", "c.oid"));
    each(r, [](const Row& row, Definition& d) {
      const std::string& kind = get(row, 1);
      d.line("kind", kind == "p" ? "partitioned table" : kind == "f" ? "foreign table" : "table");
      const std::string& persistence = get(row, 2);
      d.line("persistence", persistence == "u"   ? "unlogged"
                            : persistence == "t" ? "temporary"
                                                 : "permanent");
      d.field("partition by", row[3]);
      d.field(row[5] ? "partition of" : "inherits", row[4]);
      d.field("partition bound", row[5]);
      d.field("columns", row[6]);
      d.flag("row level security", row[7]);
      d.flag("force row level security", row[8]);
      const std::string& ident = get(row, 9);
      d.line("replica identity", ident == "n"   ? "nothing"
                                 : ident == "f" ? "full"
                                 : ident == "i" ? "index"
                                                : "default");
      d.field("options", row[10]);
      d.field("access method", row[11]);
      d.field("tablespace", row[12]);
      d.field("server", row[13]);
      d.ownership(row[14], row[16], row[15]);
      return "table";
    });
  }

  void columns() {
    Result r = query(
        "SELECT " + qualified("n.nspname", "c.relname") +
        " || '.' || quote_ident(a.attname),"
        " format_type(a.atttypid, a.atttypmod),"
        " (SELECT " +
        qualified("cn.nspname", "co.collname") +
        " FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace"
        " WHERE co.oid = a.attcollation AND a.attcollation <> t.typcollation),"
        " a.attnotnull, CASE WHEN a.attgenerated = '' THEN pg_get_expr(ad.adbin, ad.adrelid) END,"
        " CASE WHEN a.attgenerated = 's' THEN pg_get_expr(ad.adbin, ad.adrelid) END,"
        " a.attidentity, CASE WHEN a.attstorage <> t.typstorage THEN a.attstorage END, " +
        std::string(version_ >= 140000 ? "a.attcompression" : "''") +
        ", CASE WHEN a.attstattarget >= 0 THEN a.attstattarget END,"
        " col_description(c.oid, a.attnum),"
        // Columns have no default privileges, so a NULL attacl needs no aclexplode().
        " CASE WHEN a.attacl IS NOT NULL THEN " +
        acl_sql("a.attacl") +
        " END"
        " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
        " JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_type t ON t.oid = a.atttypid"
        " LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum"
        " WHERE a.attnum > 0 AND NOT a.attisdropped"
        " AND c.relkind IN ('r', 'p', 'f', 'v', 'm', 'c') AND " +
        in_user_schemas("pg_class", "c.oid") +
        // A composite type's relation belongs to the extension through its pg_type row.
        " AND NOT EXISTS (SELECT FROM pg_depend e WHERE e.classid = 'pg_type'::regclass"
        " AND e.objid = c.reltype AND e.deptype = 'e')");
    each(r, [](const Row& row, Definition& d) {
      d.field("type", row[1]);
      d.field("collation", row[2]);
      d.line("not null", row[3] == "t" ? "yes" : "");
      d.field("default", row[4]);
      d.line("generated always as", row[5] ? "(" + *row[5] + ") stored" : "");
      const std::string& identity = get(row, 6);
      d.line("identity", identity == "a"   ? "generated always"
                         : identity == "d" ? "generated by default"
                                           : "");
      const std::string& storage = get(row, 7);
      d.line("storage", storage == "p"   ? "plain"
                        : storage == "e" ? "external"
                        : storage == "m" ? "main"
                        : storage == "x" ? "extended"
                                         : "");
      const std::string& compression = get(row, 8);
      d.line("compression", compression == "p" ? "pglz" : compression == "l" ? "lz4" : "");
      d.field("statistics", row[9]);
      d.field("comment", row[10]);
      d.block(row[11]);
      return "column";
    });
  }

  void constraints() {
    Result r = query("SELECT " + qualified("n.nspname", "c.relname") +
                     " || '.' || quote_ident(co.conname), pg_get_constraintdef(co.oid),"
                     " co.convalidated, co.condeferrable, co.condeferred,"
                     " obj_description(co.oid, 'pg_constraint')"
                     " FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid"
                     " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE " +
                     in_user_schemas("pg_class", "c.oid"));
    each(r, [](const Row& row, Definition& d) {
      d.field("definition", row[1]);
      d.flag("validated", row[2]);
      d.flag("deferrable", row[3]);
      d.flag("initially deferred", row[4]);
      d.field("comment", row[5]);
      return "constraint";
    });
  }

  void indexes() {
    Result r = query(
        "SELECT " + qualified("n.nspname", "ic.relname") +
        ", pg_get_indexdef(i.indexrelid), i.indisvalid, i.indisunique, i.indisready,"
        " i.indisclustered, i.indisreplident,"
        " (SELECT quote_ident(spcname) FROM pg_tablespace WHERE oid = ic.reltablespace),"
        " (SELECT " +
        qualified("pn.nspname", "pc.relname") +
        " FROM pg_inherits h JOIN pg_class pc ON pc.oid = h.inhparent"
        " JOIN pg_namespace pn ON pn.oid = pc.relnamespace WHERE h.inhrelid = ic.oid),"
        " obj_description(ic.oid, 'pg_class')"
        " FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid"
        " JOIN pg_class tc ON tc.oid = i.indrelid JOIN pg_namespace n ON n.oid = ic.relnamespace"
        " WHERE tc.relkind IN ('r', 'p', 'm') AND " +
        in_user_schemas("pg_class", "tc.oid"));
    each(r, [](const Row& row, Definition& d) {
      d.field("definition", row[1]);
      d.flag("valid", row[2]);
      d.flag("unique", row[3]);
      d.flag("ready", row[4]);
      d.line("clustered", row[5] == "t" ? "yes" : "");
      d.line("replica identity", row[6] == "t" ? "yes" : "");
      d.field("tablespace", row[7]);
      d.field("attached to", row[8]);
      d.field("comment", row[9]);
      return "index";
    });
  }

  void views() {
    Result r =
        query("SELECT " + qualified("n.nspname", "c.relname") + ", c.relkind, " +
              sorted_options("c.reloptions") +
              ", (SELECT quote_ident(spcname) FROM pg_tablespace WHERE oid = c.reltablespace),"
              " pg_get_userbyid(c.relowner), " +
              acl_or_default("c.relacl", 'r', "c.relowner") +
              ", obj_description(c.oid, 'pg_class'), pg_get_viewdef(c.oid)"
              " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
              " WHERE c.relkind IN ('v', 'm') AND " +
              in_user_schemas("pg_class", "c.oid"));
    each(r, [](const Row& row, Definition& d) {
      d.field("options", row[2]);
      d.field("tablespace", row[3]);
      d.ownership(row[4], row[6], row[5]);
      d.block(row[7]);
      return row[1] == "m" ? "materialized view" : "view";
    });
  }

  void sequences() {
    // Everything CREATE SEQUENCE sets, never the current value: nextval() is data, not schema.
    Result r = query(
        "SELECT " + qualified("n.nspname", "c.relname") +
        ", format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmin, s.seqmax,"
        " s.seqcache, s.seqcycle, c.relpersistence,"
        " (SELECT CASE d.deptype WHEN 'i' THEN 'identity of ' ELSE '' END || " +
        qualified("tn.nspname", "t.relname") +
        " || '.' || quote_ident(a.attname) FROM pg_depend d JOIN pg_class t ON t.oid = d.refobjid"
        " JOIN pg_namespace tn ON tn.oid = t.relnamespace"
        " JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid"
        " WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid"
        " AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') LIMIT 1),"
        " pg_get_userbyid(c.relowner), " +
        acl_or_default("c.relacl", 's', "c.relowner") +
        ", obj_description(c.oid, 'pg_class')"
        " FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid"
        " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE " +
        in_user_schemas("pg_class", "c.oid"));
    each(r, [](const Row& row, Definition& d) {
      d.field("type", row[1]);
      d.field("start", row[2]);
      d.field("increment", row[3]);
      d.field("minvalue", row[4]);
      d.field("maxvalue", row[5]);
      d.field("cache", row[6]);
      d.flag("cycle", row[7]);
      d.line("persistence", row[8] == "u" ? "unlogged" : "permanent");
      d.field("owned by", row[9]);
      d.ownership(row[10], row[12], row[11]);
      return "sequence";
    });
  }

  void functions() {
    // pg_get_functiondef() refuses aggregates, so they are described from pg_aggregate.
    Result r =
        query("SELECT " + qualified("n.nspname", "p.proname") +
              " || '(' || pg_get_function_identity_arguments(p.oid) || ')', p.prokind,"
              " CASE WHEN p.prokind <> 'a' THEN pg_get_functiondef(p.oid) ELSE ("
              "SELECT concat_ws(E'\\n', 'arguments: ' || pg_get_function_arguments(p.oid),"
              " 'kind: ' || a.aggkind::text, 'state function: ' || a.aggtransfn::regprocedure,"
              " 'state type: ' || format_type(a.aggtranstype, NULL),"
              " 'final function: ' || nullif(a.aggfinalfn, 0)::regprocedure,"
              " 'combine function: ' || nullif(a.aggcombinefn, 0)::regprocedure,"
              " 'initial value: ' || a.agginitval,"
              " 'sort operator: ' || nullif(a.aggsortop, 0)::regoperator)"
              " FROM pg_aggregate a WHERE a.aggfnoid = p.oid) END,"
              " pg_get_userbyid(p.proowner), " +
              acl_or_default("p.proacl", 'f', "p.proowner") +
              ", obj_description(p.oid, 'pg_proc')"
              " FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE " +
              in_user_schemas("pg_proc", "p.oid") +
              // A range type's constructors are created with it and belong to it (pg_dump agrees).
              " AND NOT EXISTS (SELECT FROM pg_depend i WHERE i.classid = 'pg_proc'::regclass"
              " AND i.objid = p.oid AND i.deptype = 'i')");
    each(r, [](const Row& row, Definition& d) {
      d.ownership(row[3], row[5], row[4]);
      d.block(row[2]);
      const std::string& kind = get(row, 1);
      return kind == "p" ? "procedure" : kind == "a" ? "aggregate" : "function";
    });
  }

  // Triggers and rules alike: named "table.name", described by the server's deparser, when
  // they fire (session_replication_role) and their comment. `catalog` holds them (aliased h),
  // `relation` is its column of their table, `filter` leaves out the internal ones.
  struct TableHook {
    std::string kind, catalog, name, deparser, enabled, relation, filter;
  };
  void table_hooks(const TableHook& h) {
    Result r = query("SELECT " + qualified("n.nspname", "c.relname") + " || '.' || quote_ident(h." +
                     h.name + "), " + h.deparser + "(h.oid), h." + h.enabled +
                     ", obj_description(h.oid, '" + h.catalog + "') FROM " + h.catalog +
                     " h JOIN pg_class c ON c.oid = h." + h.relation +
                     " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE " + h.filter + " AND " +
                     in_user_schemas("pg_class", "c.oid"));
    each(r, [&h](const Row& row, Definition& d) {
      d.field("definition", row[1]);
      d.line("enabled", enabled_name(get(row, 2)));
      d.field("comment", row[3]);
      return h.kind;
    });
  }

  void triggers() {
    table_hooks({.kind = "trigger",
                 .catalog = "pg_trigger",
                 .name = "tgname",
                 .deparser = "pg_get_triggerdef",
                 .enabled = "tgenabled",
                 .relation = "tgrelid",
                 .filter = "NOT h.tgisinternal"});
  }

  void policies() {
    Result r =
        query("SELECT " + qualified("n.nspname", "c.relname") +
              " || '.' || quote_ident(p.polname), p.polpermissive, p.polcmd,"
              " (SELECT string_agg(x.role, ', ' ORDER BY x.role COLLATE \"C\") FROM (SELECT CASE"
              " WHEN u.r = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(u.r)) END AS role"
              " FROM unnest(p.polroles) AS u(r)) x),"
              " pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid),"
              " obj_description(p.oid, 'pg_policy')"
              " FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid"
              " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE " +
              in_user_schemas("pg_class", "c.oid"));
    each(r, [](const Row& row, Definition& d) {
      d.line("as", row[1] == "t" ? "permissive" : "restrictive");
      const std::string& cmd = get(row, 2);
      d.line("for", cmd == "r"   ? "SELECT"
                    : cmd == "a" ? "INSERT"
                    : cmd == "w" ? "UPDATE"
                    : cmd == "d" ? "DELETE"
                                 : "ALL");
      d.field("to", row[3]);
      d.field("using", row[4]);
      d.field("with check", row[5]);
      d.field("comment", row[6]);
      return "policy";
    });
  }

  void rules() {
    table_hooks({.kind = "rule",
                 .catalog = "pg_rewrite",
                 .name = "rulename",
                 .deparser = "pg_get_ruledef",
                 .enabled = "ev_enabled",
                 .relation = "ev_class",
                 .filter = "h.rulename <> '_RETURN'"});
  }

  void types() {
    // Enums, domains, ranges and stand-alone composite types; array, multirange and table row
    // types come with the object they belong to.
    Result r = query(
        "SELECT " + qualified("n.nspname", "t.typname") +
        ", t.typtype,"
        " (SELECT string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder)"
        " FROM pg_enum e WHERE e.enumtypid = t.oid),"
        " CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END,"
        " t.typnotnull, pg_get_expr(t.typdefaultbin, 0),"
        " (SELECT " +
        qualified("cn.nspname", "co.collname") +
        " FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace"
        " WHERE co.oid = t.typcollation AND t.typcollation <> coalesce((SELECT b.typcollation"
        " FROM pg_type b WHERE b.oid = t.typbasetype), 0)),"
        " (SELECT string_agg('constraint ' || quote_ident(co.conname) || ': '"
        " || pg_get_constraintdef(co.oid) || CASE WHEN co.convalidated THEN ''"
        " ELSE ' (not validated)' END, E'\\n' ORDER BY co.conname COLLATE \"C\")"
        " FROM pg_constraint co WHERE co.contypid = t.oid),"
        " (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum)"
        " FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0"
        " AND NOT a.attisdropped),"
        " (SELECT concat_ws(E'\\n', 'subtype: ' || format_type(g.rngsubtype, NULL),"
        " 'subtype operator class: ' || (SELECT " +
        qualified("on2.nspname", "oc.opcname") +
        " FROM pg_opclass oc JOIN pg_namespace on2 ON on2.oid = oc.opcnamespace"
        " WHERE oc.oid = g.rngsubopc),"
        " 'collation: ' || nullif(g.rngcollation, 0)::regcollation,"
        " 'canonical: ' || nullif(g.rngcanonical, 0)::regprocedure,"
        " 'subtype diff: ' || nullif(g.rngsubdiff, 0)::regprocedure,"
        " 'multirange type: ' || format_type(nullif(g.rngmultitypid, 0), NULL))"
        " FROM pg_range g WHERE g.rngtypid = t.oid),"
        " pg_get_userbyid(t.typowner), " +
        acl_or_default("t.typacl", 'T', "t.typowner") +
        ", obj_description(t.oid, 'pg_type')"
        " FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace"
        " LEFT JOIN pg_class tc ON tc.oid = t.typrelid"
        " WHERE (t.typtype IN ('e', 'd', 'r') OR (t.typtype = 'c' AND tc.relkind = 'c')) AND " +
        in_user_schemas("pg_type", "t.oid"));
    each(r, [](const Row& row, Definition& d) {
      const std::string& typtype = get(row, 1);
      std::string kind = typtype == "e"   ? "enum"
                         : typtype == "d" ? "domain"
                         : typtype == "r" ? "range type"
                                          : "composite type";
      d.field("labels", row[2]);
      d.field("base type", row[3]);
      d.line("not null", row[4] == "t" ? "yes" : "");
      d.field("default", row[5]);
      d.field("collation", row[6]);
      d.field("columns", row[8]);
      d.block(row[9]);
      d.block(row[7]);
      d.ownership(row[10], row[12], row[11]);
      return kind;
    });
  }

  void collations() {
    std::string locale = version_ >= 170000   ? "c.colllocale"
                         : version_ >= 150000 ? "c.colliculocale"
                                              : "NULL::text";
    Result r = query("SELECT " + qualified("n.nspname", "c.collname") +
                     ", c.collprovider, c.collcollate, c.collctype, " + locale +
                     ", c.collisdeterministic, pg_get_userbyid(c.collowner),"
                     " obj_description(c.oid, 'pg_collation')"
                     " FROM pg_collation c JOIN pg_namespace n ON n.oid = c.collnamespace WHERE " +
                     in_user_schemas("pg_collation", "c.oid"));
    each(r, [](const Row& row, Definition& d) {
      const std::string& provider = get(row, 1);
      d.line("provider", provider == "i" ? "icu" : provider == "c" ? "libc" : provider);
      d.field("lc_collate", row[2]);
      d.field("lc_ctype", row[3]);
      d.field("locale", row[4]);
      d.flag("deterministic", row[5]);
      d.ownership(row[6], row[7]);
      return "collation";
    });
  }

  void statistics() {
    Result r = query("SELECT " + qualified("n.nspname", "s.stxname") +
                     ", pg_get_statisticsobjdef(s.oid),"
                     " CASE WHEN s.stxstattarget >= 0 THEN s.stxstattarget END,"
                     " pg_get_userbyid(s.stxowner), obj_description(s.oid, 'pg_statistic_ext')"
                     " FROM pg_statistic_ext s JOIN pg_namespace n ON n.oid = s.stxnamespace"
                     " WHERE " +
                     in_user_schemas("pg_statistic_ext", "s.oid"));
    each(r, [](const Row& row, Definition& d) {
      d.field("definition", row[1]);
      d.field("statistics", row[2]);
      d.ownership(row[3], row[4]);
      return "statistics";
    });
  }

  void default_privileges() {
    // ALTER DEFAULT PRIVILEGES decides the grants of objects a migration will create.
    Result r = query(
        "SELECT quote_ident(pg_get_userbyid(a.defaclrole)) || coalesce(' in schema ' ||"
        " quote_ident(n.nspname), '') || ' on ' || CASE a.defaclobjtype WHEN 'r' THEN 'tables'"
        " WHEN 'S' THEN 'sequences' WHEN 'f' THEN 'functions' WHEN 'T' THEN 'types'"
        " WHEN 'n' THEN 'schemas' ELSE a.defaclobjtype::text END, " +
        acl_sql("a.defaclacl") +
        " FROM pg_default_acl a LEFT JOIN pg_namespace n ON n.oid = a.defaclnamespace"
        " WHERE a.defaclnamespace = 0 OR (" +
        std::string(kNsFilter) + ")");
    each(r, [](const Row& row, Definition& d) {
      d.block(row[1]);
      return "default privileges";
    });
  }

  Connection& conn_;
  std::string excluded_;
  int version_;
  std::vector<SchemaObject> objects_;
};

// JSON string: only '"', '\\' and control characters are escaped, bytes are otherwise kept as
// they are (no UTF-8 validation, so SQL_ASCII databases hash too).
void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

bool by_key(const SchemaObject& a, const SchemaObject& b) {
  return std::tie(a.kind, a.name) < std::tie(b.kind, b.name);
}

}  // namespace

SchemaFingerprint schema_fingerprint(Connection& conn, const SchemaOptions& options) {
  if (!conn.is_open()) throw ConfigError("schema fingerprint: the connection is closed");
  if (conn.transaction_status() != TxStatus::kIdle) {
    throw ConfigError(
        "schema fingerprint: the connection is inside a transaction; it needs an idle one to "
        "read the catalog in a snapshot of its own");
  }
  SchemaFingerprint fp;
  fp.server_version = conn.server_version();
  try {
    // Output settings fixed for this transaction only: with an empty search_path every name
    // from a user schema is qualified; dates, intervals and floats print the same everywhere.
    conn.execute(
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;"
        " SELECT set_config('search_path', '', true), set_config('DateStyle', 'ISO, YMD', true),"
        " set_config('IntervalStyle', 'postgres', true), set_config('TimeZone', 'UTC', true),"
        " set_config('extra_float_digits', '3', true),"
        " set_config('quote_all_identifiers', 'off', true)");
    Reader reader(conn, text_array(options.exclude_schemas), fp.server_version);
    fp.objects = reader.read();
    conn.execute("ROLLBACK");
  } catch (...) {
    conn.rollback_quietly("schema fingerprint");
    throw;
  }
  std::sort(fp.objects.begin(), fp.objects.end(), by_key);
  fp.sha256 = schema_digest(fp.objects);
  log::core()->debug("schema fingerprint: {} objects, sha256 {}", fp.objects.size(), fp.sha256);
  return fp;
}

std::string schema_canonical_text(std::vector<SchemaObject> objects) {
  std::sort(objects.begin(), objects.end(), by_key);
  std::string out(kFormatLine);
  for (const SchemaObject& o : objects) {
    out += '[';
    append_json_string(out, o.kind);
    out += ',';
    append_json_string(out, o.name);
    out += ',';
    append_json_string(out, o.definition);
    out += "]\n";
  }
  return out;
}

std::string schema_digest(const std::vector<SchemaObject>& objects) {
  return sha256_hex(schema_canonical_text(objects));
}

}  // namespace pgsafe

#pragma once
// Small building blocks of the self-contained HTML pages fcn writes
// (report.html): escaping, tables, numbers and data: URIs. Every string that
// comes from a file goes through html_escape before it reaches a page.
#include <string>
#include <utility>
#include <vector>

namespace fcn {

// &, <, >, " and ' as entities: safe in element text and in quoted
// attribute values, in HTML and in inline SVG alike.
std::string html_escape(const std::string& text);

// RFC 4648 base64 (with padding), for data: URIs.
std::string base64_encode(const std::string& bytes);

// A number for people: up to `digits` significant digits ("%.{digits}g"),
// "n/a" when it is not finite.
std::string format_number(double value, int digits = 4);
// 100 * part / whole with one decimal and "%"; "n/a" when whole is 0.
std::string format_percent(double part, double whole);

struct HtmlTable {
  std::string id;                              // the table's id attribute ("" for none)
  std::vector<std::string> headers;            // plain text, escaped here
  std::vector<std::vector<std::string>> rows;  // cells as HTML: escape file strings first
};

// <table> in a horizontally scrolling <div>, so wide tables do not widen
// the page on a phone; header in <thead>, one <tr> per row in <tbody>.
std::string html_table(const HtmlTable& table);

// A two-column table of name -> value (values as HTML), class "kv".
std::string html_key_values(const std::vector<std::pair<std::string, std::string>>& rows);

}  // namespace fcn

#include "fcn/train/html.hpp"

#include <fmt/format.h>

#include <cmath>

namespace fcn {

std::string html_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string base64_encode(const std::string& bytes) {
  static const char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    // three bytes -> 24 bits -> four 6-bit digits; '=' pads a short last group
    const size_t n = std::min<size_t>(3, bytes.size() - i);
    uint32_t bits = 0;
    for (size_t k = 0; k < 3; ++k) bits = bits << 8 | (k < n ? static_cast<unsigned char>(bytes[i + k]) : 0u);
    for (size_t k = 0; k < 4; ++k) out += k <= n ? kAlphabet[bits >> (18 - 6 * k) & 63] : '=';
  }
  return out;
}

std::string format_number(double value, int digits) {
  return std::isfinite(value) ? fmt::format("{:.{}g}", value, digits) : "n/a";
}

std::string format_percent(double part, double whole) {
  return whole > 0 && std::isfinite(part) ? fmt::format("{:.1f}%", 100.0 * part / whole) : "n/a";
}

std::string html_table(const HtmlTable& table) {
  std::string out = "<div class=\"scroll\"><table" + (table.id.empty() ? "" : " id=\"" + html_escape(table.id) + "\"") +
                    "><thead><tr>";
  for (const auto& header : table.headers) out += "<th>" + html_escape(header) + "</th>";
  out += "</tr></thead><tbody>\n";
  for (const auto& row : table.rows) {
    out += "<tr>";
    for (const auto& cell : row) out += "<td>" + cell + "</td>";
    out += "</tr>\n";
  }
  return out + "</tbody></table></div>\n";
}

std::string html_key_values(const std::vector<std::pair<std::string, std::string>>& rows) {
  std::string out = "<div class=\"scroll\"><table class=\"kv\"><tbody>\n";
  for (const auto& [name, value] : rows) out += "<tr><th>" + html_escape(name) + "</th><td>" + value + "</td></tr>\n";
  return out + "</tbody></table></div>\n";
}

}  // namespace fcn

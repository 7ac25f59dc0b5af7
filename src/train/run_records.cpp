#include "fcn/train/run_records.hpp"

#include <cmath>
#include <fstream>

namespace fcn {

namespace {

using Json = nlohmann::ordered_json;  // keeps the file's key order (layer order)

double number_at(const Json& object, const char* key) {
  const auto it = object.find(key);
  return it != object.end() && it->is_number() ? it->get<double>() : std::nan("");
}

std::optional<double> optional_at(const Json& object, const char* key) {
  const auto it = object.find(key);
  return it != object.end() && it->is_number() ? std::optional<double>(it->get<double>()) : std::nullopt;
}

int64_t integer_at(const Json& object, const char* key) {
  const auto it = object.find(key);
  return it != object.end() && it->is_number() ? it->get<int64_t>() : 0;
}

NamedValues named_values(const Json& diag, const char* key) {
  NamedValues values;
  const auto it = diag.find(key);
  if (it == diag.end() || !it->is_object()) return values;
  for (const auto& [name, value] : it->items())
    values.emplace_back(name, value.is_number() ? value.get<double>() : std::nan(""));
  return values;
}

StepRecord parse_step(int64_t iter, const Json& record) {
  StepRecord step{iter, number_at(record, "loss"), number_at(record, "lr"), number_at(record, "images_per_s"), {}};
  const auto diag = record.find("diag");
  if (diag != record.end() && diag->is_object())
    step.diag = {named_values(*diag, "grad_norm"), named_values(*diag, "update_ratio"),
                 named_values(*diag, "relu_zero")};
  return step;
}

ClassScore parse_class(const Json& entry, size_t index) {
  ClassScore score;
  score.id = entry.contains("id") ? integer_at(entry, "id") : static_cast<int64_t>(index);
  const auto name = entry.find("name");
  score.name =
      name != entry.end() && name->is_string() ? name->get<std::string>() : "class_" + std::to_string(score.id);
  score.iou = optional_at(entry, "iou");
  score.acc = optional_at(entry, "acc");
  score.gt_pixels = integer_at(entry, "gt_pixels");
  score.pred_pixels = integer_at(entry, "pred_pixels");
  return score;
}

// A square matrix of counts, or nothing: a ragged one cannot be drawn.
std::vector<std::vector<int64_t>> parse_confusion(const Json& val) {
  const auto it = val.find("confusion");
  if (it == val.end() || !it->is_array()) return {};
  std::vector<std::vector<int64_t>> rows;
  for (const auto& row : *it) {
    if (!row.is_array() || row.size() != it->size()) return {};
    rows.emplace_back();
    for (const auto& count : row) rows.back().push_back(count.is_number() ? count.get<int64_t>() : 0);
  }
  return rows;
}

ValidationRecord parse_validation(int64_t iter, const Json& val) {
  ValidationRecord record{iter, {}, parse_confusion(val)};
  Scores& s = record.scores;
  s.pixel_acc = number_at(val, "pixel_acc");
  s.mean_acc = number_at(val, "mean_acc");
  s.mean_iou = number_at(val, "mean_iou");
  s.fwavacc = number_at(val, "fwavacc");
  s.num_images = integer_at(val, "num_images");
  s.ignored_pixels = integer_at(val, "ignored_pixels");
  const auto per_class = val.find("per_class");
  if (per_class != val.end() && per_class->is_array())
    for (size_t i = 0; i < per_class->size(); ++i)
      if ((*per_class)[i].is_object()) s.per_class.push_back(parse_class((*per_class)[i], i));
  return record;
}

WarningRecord parse_warning(int64_t iter, const Json& warning) {
  auto text = [&](const char* key) {
    const auto it = warning.find(key);
    return it != warning.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  return {iter, text("kind"), text("message")};
}

}  // namespace

RunRecords read_run_records(const std::string& metrics_path) {
  RunRecords records;
  std::ifstream in(metrics_path);
  for (std::string line; std::getline(in, line);) {
    const Json record = Json::parse(line, nullptr, false);
    if (record.is_discarded() || !record.is_object() || !record.contains("iter") || !record["iter"].is_number())
      continue;
    const int64_t iter = record["iter"].get<int64_t>();
    if (record.contains("val") && record["val"].is_object())
      records.validations.push_back(parse_validation(iter, record["val"]));
    else if (record.contains("warning") && record["warning"].is_object())
      records.warnings.push_back(parse_warning(iter, record["warning"]));
    else
      records.steps.push_back(parse_step(iter, record));
  }
  return records;
}

}  // namespace fcn

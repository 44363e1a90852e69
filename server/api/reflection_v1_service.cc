#include "server/api/reflection_v1_service.h"

#include <set>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>

namespace trainerd {
namespace {

namespace pb = google::protobuf;
using grpc::reflection::v1::ServerReflectionRequest;
using grpc::reflection::v1::ServerReflectionResponse;

// `file` and the files it imports, each once per stream (what the client has already
// been sent is not sent again), as the reflection protocol asks.
void AddFile(const pb::FileDescriptor* file, std::set<std::string>* sent, ServerReflectionResponse* response) {
  if (!sent->insert(file->name()).second) return;
  pb::FileDescriptorProto proto;
  file->CopyTo(&proto);
  response->mutable_file_descriptor_response()->add_file_descriptor_proto(proto.SerializeAsString());
  for (int i = 0; i < file->dependency_count(); ++i) AddFile(file->dependency(i), sent, response);
}

void NotFound(const std::string& what, ServerReflectionResponse* response) {
  response->mutable_error_response()->set_error_code(static_cast<int>(grpc::StatusCode::NOT_FOUND));
  response->mutable_error_response()->set_error_message(what + " not found");
}

}  // namespace

grpc::Status ReflectionV1Service::ServerReflectionInfo(
    grpc::ServerContext* /*context*/,
    grpc::ServerReaderWriter<ServerReflectionResponse, ServerReflectionRequest>* stream) {
  const pb::DescriptorPool* pool = pb::DescriptorPool::generated_pool();
  std::set<std::string> sent;
  ServerReflectionRequest request;
  while (stream->Read(&request)) {
    ServerReflectionResponse response;
    response.set_valid_host(request.host());
    *response.mutable_original_request() = request;
    switch (request.message_request_case()) {
      case ServerReflectionRequest::kListServices:
        for (const std::string& name : services_) response.mutable_list_services_response()->add_service()->set_name(name);
        break;
      case ServerReflectionRequest::kFileByFilename:
        if (const pb::FileDescriptor* f = pool->FindFileByName(request.file_by_filename())) {
          AddFile(f, &sent, &response);
        } else {
          NotFound("file " + request.file_by_filename(), &response);
        }
        break;
      case ServerReflectionRequest::kFileContainingSymbol:
        if (const pb::FileDescriptor* f = pool->FindFileContainingSymbol(request.file_containing_symbol())) {
          AddFile(f, &sent, &response);
        } else {
          NotFound("symbol " + request.file_containing_symbol(), &response);
        }
        break;
      case ServerReflectionRequest::kFileContainingExtension: {
        const auto& e = request.file_containing_extension();
        const pb::Descriptor* type = pool->FindMessageTypeByName(e.containing_type());
        const pb::FieldDescriptor* field = type ? pool->FindExtensionByNumber(type, e.extension_number()) : nullptr;
        if (field != nullptr) {
          AddFile(field->file(), &sent, &response);
        } else {
          NotFound("extension " + std::to_string(e.extension_number()) + " of " + e.containing_type(), &response);
        }
        break;
      }
      case ServerReflectionRequest::kAllExtensionNumbersOfType:
        if (const pb::Descriptor* type = pool->FindMessageTypeByName(request.all_extension_numbers_of_type())) {
          std::vector<const pb::FieldDescriptor*> extensions;
          pool->FindAllExtensions(type, &extensions);
          auto* numbers = response.mutable_all_extension_numbers_response();
          numbers->set_base_type_name(type->full_name());
          for (const auto* x : extensions) numbers->add_extension_number(x->number());
        } else {
          NotFound("type " + request.all_extension_numbers_of_type(), &response);
        }
        break;
      default:
        response.mutable_error_response()->set_error_code(static_cast<int>(grpc::StatusCode::UNIMPLEMENTED));
        response.mutable_error_response()->set_error_message("unknown reflection request");
    }
    if (!stream->Write(response)) break;
  }
  return grpc::Status::OK;
}

}  // namespace trainerd

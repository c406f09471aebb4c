# Finds the C core of xmlrpc-c (Debian: libxmlrpc-core-c3-dev).
# Defines XmlrpcC::core (value model + XML encode/decode) and XmlrpcC::client.
find_path(XMLRPCC_INCLUDE_DIR NAMES xmlrpc-c/base.h)
find_library(XMLRPCC_LIB NAMES xmlrpc)
find_library(XMLRPCC_UTIL_LIB NAMES xmlrpc_util)
find_library(XMLRPCC_XMLPARSE_LIB NAMES xmlrpc_xmlparse)
find_library(XMLRPCC_XMLTOK_LIB NAMES xmlrpc_xmltok)
find_library(XMLRPCC_CLIENT_LIB NAMES xmlrpc_client)

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(XmlrpcC REQUIRED_VARS XMLRPCC_INCLUDE_DIR XMLRPCC_LIB
  XMLRPCC_UTIL_LIB XMLRPCC_XMLPARSE_LIB XMLRPCC_XMLTOK_LIB XMLRPCC_CLIENT_LIB)

if(XmlrpcC_FOUND AND NOT TARGET XmlrpcC::core)
  add_library(XmlrpcC::core INTERFACE IMPORTED)
  set_target_properties(XmlrpcC::core PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${XMLRPCC_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES "${XMLRPCC_LIB};${XMLRPCC_XMLPARSE_LIB};${XMLRPCC_XMLTOK_LIB};${XMLRPCC_UTIL_LIB}")
  add_library(XmlrpcC::client INTERFACE IMPORTED)
  set_target_properties(XmlrpcC::client PROPERTIES
    INTERFACE_LINK_LIBRARIES "${XMLRPCC_CLIENT_LIB};XmlrpcC::core")
endif()

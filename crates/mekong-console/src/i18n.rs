//! Every label of the console, in Vietnamese (the default) and English. A label is a variant of
//! [`L`]: one without both texts does not compile.

/// The language a page is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    Vi,
    En,
}

impl Lang {
    /// `vi` or `en`, as the cookie and the `lang` attribute say.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Vi => "vi",
            Lang::En => "en",
        }
    }

    pub fn parse(code: &str) -> Option<Lang> {
        match code {
            "vi" => Some(Lang::Vi),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The other one: what the switch offers.
    pub fn other(self) -> Lang {
        match self {
            Lang::Vi => Lang::En,
            Lang::En => Lang::Vi,
        }
    }

    pub fn t(self, label: L) -> &'static str {
        let (vi, en) = label.texts();
        match self {
            Lang::Vi => vi,
            Lang::En => en,
        }
    }
}

/// The console's labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L {
    Title,
    SignIn,
    SignInHint,
    ApiKey,
    SignOut,
    SignedInAs,
    WrongKey,
    NoConsoleRole,
    TooManyFailures,
    SessionExpired,
    Language,
    Overview,
    Resources,
    Adapters,
    Instance,
    Ready,
    NotReady,
    Kafka,
    Reachable,
    Unreachable,
    RecordsAccepted,
    RecordsRejected,
    LastHour,
    PerMinute,
    RecordTypes,
    Routes,
    Clients,
    Kind,
    Name,
    Description,
    Version,
    ChangedBy,
    ChangedAt,
    Search,
    All,
    Nothing,
    State,
    Running,
    Paused,
    Pause,
    Resume,
    Confirm,
    ConfirmPause,
    ConfirmResume,
    Done,
    ReadOnly,
    Refused,
    Back,
    AdapterType,
    Target,
    NoSuchResource,
    DeadLetters,
    Offset,
    RecordId,
    Key,
    Attempts,
    Reason,
    Time,
    Replayed,
    ReplaySelected,
    ReplayAll,
    ConfirmReplay,
    NextPage,
    FilterReason,
    ReplayedCount,
    AuditLog,
    LateDossiers,
    Deadline,
    Unit,
    Overdue,
    OverdueByUnit,
    Due,
    LateBy,
    NoDeadlines,
    NothingOverdue,
    FirstShown,
    Actor,
    Event,
    Outcome,
    Details,
    Older,
    AuditWindowNote,
    Edit,
    NewResource,
    Preview,
    Apply,
    Delete,
    ConfirmDelete,
    Verdict,
    Accepted,
    Invalid,
    Conflict,
    Problems,
    Changes,
    PreviewNote,
    Deleted,
    Applied,
    Records,
    SearchRecord,
    NoLineage,
    Copy,
    ShowCopy,
    Reveal,
    RevealNote,
    Masked,
    RedactedHere,
    PayloadsHidden,
    TestRecord,
    RecordType,
    AsClient,
    Payload,
    Run,
    WouldAccept,
    WouldRefuse,
    Route,
    Matched,
    TestNote,
    Lag,
    TopRefusals,
    Checkpoint,
    CheckpointAge,
    NoCheckpoint,
    History,
    HistoryNote,
    Proof,
    RecentOutcomes,
    Outcomes,
}

impl L {
    fn texts(self) -> (&'static str, &'static str) {
        match self {
            L::Title => ("Bảng điều khiển Mekong", "Mekong console"),
            L::SignIn => ("Đăng nhập", "Sign in"),
            L::SignInHint => (
                "Dán khóa API của tài khoản quản trị hoặc kiểm toán.",
                "Paste the API key of an admin or auditor client.",
            ),
            L::ApiKey => ("Khóa API", "API key"),
            L::SignOut => ("Đăng xuất", "Sign out"),
            L::SignedInAs => ("Đăng nhập với", "Signed in as"),
            L::WrongKey => (
                "Khóa không đúng: không khách hàng nào giữ khóa này.",
                "Wrong key: no client holds this key.",
            ),
            L::NoConsoleRole => (
                "Khách hàng này không có vai trò admin hay auditor.",
                "This client has neither the admin nor the auditor role.",
            ),
            L::TooManyFailures => (
                "Quá nhiều lần đăng nhập sai từ địa chỉ này; hãy thử lại sau",
                "Too many failed sign-ins from this address; try again in",
            ),
            L::SessionExpired => (
                "Phiên làm việc đã hết hạn; hãy đăng nhập lại.",
                "Your session has ended; sign in again.",
            ),
            L::Language => ("English", "Tiếng Việt"),
            L::Overview => ("Tổng quan", "Overview"),
            L::Resources => ("Tài nguyên", "Resources"),
            L::Adapters => ("Bộ chuyển đổi", "Adapters"),
            L::Instance => ("Phiên bản chạy này", "This instance"),
            L::Ready => ("Sẵn sàng", "Ready"),
            L::NotReady => ("Chưa sẵn sàng", "Not ready"),
            L::Kafka => ("Kafka", "Kafka"),
            L::Reachable => ("kết nối được", "reachable"),
            L::Unreachable => ("không kết nối được", "unreachable"),
            L::RecordsAccepted => ("Bản ghi được nhận", "Records accepted"),
            L::RecordsRejected => ("Bản ghi bị từ chối", "Records rejected"),
            L::LastHour => ("trong giờ qua", "in the last hour"),
            L::PerMinute => ("mỗi phút", "per minute"),
            L::RecordTypes => ("Loại bản ghi", "Record types"),
            L::Routes => ("Tuyến", "Routes"),
            L::Clients => ("Khách hàng", "Clients"),
            L::Kind => ("Loại", "Kind"),
            L::Name => ("Tên", "Name"),
            L::Description => ("Mô tả", "Description"),
            L::Version => ("Phiên bản", "Version"),
            L::ChangedBy => ("Người thay đổi", "Changed by"),
            L::ChangedAt => ("Thời điểm thay đổi", "Changed at"),
            L::Search => ("Tìm", "Search"),
            L::All => ("Tất cả", "All"),
            L::Nothing => ("Không có gì.", "Nothing."),
            L::State => ("Trạng thái", "State"),
            L::Running => ("đang chạy", "running"),
            L::Paused => ("tạm dừng", "paused"),
            L::Pause => ("Tạm dừng", "Pause"),
            L::Resume => ("Tiếp tục", "Resume"),
            L::Confirm => ("Tôi xác nhận", "I confirm"),
            L::ConfirmPause => (
                "Tạm dừng: bản ghi chờ trong Kafka, không mất gì, trên mọi phiên bản.",
                "Pause: records wait in Kafka, nothing is lost, on every instance.",
            ),
            L::ConfirmResume => (
                "Tiếp tục: bản ghi đang chờ sẽ được gửi theo thứ tự.",
                "Resume: the waiting records are delivered in order.",
            ),
            L::Done => ("Đã xong.", "Done."),
            L::ReadOnly => (
                "Vai trò kiểm toán: chỉ xem, không thay đổi.",
                "Auditor role: you may look, not change.",
            ),
            L::Refused => ("Bị từ chối", "Refused"),
            L::Back => ("Quay lại", "Back"),
            L::AdapterType => ("Kiểu", "Type"),
            L::Target => ("Nguồn bản ghi", "Reads"),
            L::NoSuchResource => ("Không có tài nguyên này.", "No such resource."),
            L::DeadLetters => ("Thư chết", "Dead letters"),
            L::Offset => ("Vị trí", "Offset"),
            L::RecordId => ("Mã bản ghi", "Record id"),
            L::Key => ("Khóa (MaHoSo)", "Key (MaHoSo)"),
            L::Attempts => ("Số lần thử", "Attempts"),
            L::Reason => ("Lý do", "Reason"),
            L::Time => ("Thời điểm (giờ Việt Nam)", "Time (Asia/Ho_Chi_Minh)"),
            L::Replayed => ("đã gửi lại", "replayed"),
            L::ReplaySelected => ("Gửi lại các thư đã chọn", "Replay the selected"),
            L::ReplayAll => (
                "Gửi lại mọi thư chưa gửi lại",
                "Replay every one not yet replayed",
            ),
            L::ConfirmReplay => (
                "Gửi lại: bộ chuyển đổi giao lại bản ghi cho nơi nhận.",
                "Replay: the adapter delivers the records again.",
            ),
            L::NextPage => ("Trang sau", "Next page"),
            L::FilterReason => ("Lọc theo lý do", "Filter by reason"),
            L::ReplayedCount => ("Số bản ghi đã gửi lại:", "Records replayed:"),
            L::AuditLog => ("Nhật ký kiểm toán", "Audit log"),
            L::LateDossiers => ("Hồ sơ trễ hạn", "Late dossiers"),
            L::Deadline => ("Thời hạn", "Deadline"),
            L::Unit => ("Đơn vị xử lý", "Unit"),
            L::Overdue => ("Trễ hạn", "Overdue"),
            L::OverdueByUnit => ("Trễ hạn theo đơn vị", "Overdue by unit"),
            L::Due => ("Hạn", "Due"),
            L::LateBy => ("Trễ", "Late by"),
            L::NoDeadlines => (
                "Chưa có thời hạn nào (tài nguyên Deadline).",
                "No deadline is defined (a Deadline resource).",
            ),
            L::NothingOverdue => ("Không có hồ sơ trễ hạn.", "No dossier is overdue."),
            L::FirstShown => ("Hiển thị", "Shown"),
            L::Actor => ("Người thực hiện", "Actor"),
            L::Event => ("Sự kiện", "Event"),
            L::Outcome => ("Kết quả", "Outcome"),
            L::Details => ("Chi tiết", "Details"),
            L::Older => ("Cũ hơn", "Older"),
            L::Edit => ("Sửa", "Edit"),
            L::NewResource => ("Tài nguyên mới", "New resource"),
            L::Preview => ("Xem trước (không ghi)", "Preview (dry run)"),
            L::Apply => ("Áp dụng", "Apply"),
            L::Delete => ("Xóa", "Delete"),
            L::ConfirmDelete => (
                "Xóa: bị từ chối nếu tài nguyên khác còn tham chiếu đến nó.",
                "Delete: refused while other resources refer to it.",
            ),
            L::Verdict => ("Kết luận", "Verdict"),
            L::Accepted => ("được chấp nhận", "accepted"),
            L::Invalid => ("không hợp lệ", "invalid"),
            L::Conflict => (
                "xung đột: đã có người thay đổi, hoặc vẫn còn bị tham chiếu",
                "conflict: someone changed it since, or it is still referred to",
            ),
            L::Problems => ("Vấn đề", "Problems"),
            L::Changes => ("Thay đổi", "Changes"),
            L::PreviewNote => (
                "Chưa ghi gì. Kiểm tra kết luận và khác biệt, rồi áp dụng.",
                "Nothing written yet. Check the verdict and the differences, then apply.",
            ),
            L::Deleted => ("Đã xóa", "Deleted"),
            L::Applied => ("Đã áp dụng.", "Applied."),
            L::Records => ("Bản ghi", "Records"),
            L::SearchRecord => (
                "Mã bản ghi hoặc mã hồ sơ (MaHoSo)",
                "Record id or dossier number (MaHoSo)",
            ),
            L::NoLineage => (
                "Phiên bản này không giữ chỉ mục dòng dõi (--lineage-dir).",
                "This instance keeps no lineage index (--lineage-dir).",
            ),
            L::Copy => ("Bản sao", "Copy"),
            L::ShowCopy => ("Xem nội dung", "Show the payload"),
            L::Reveal => ("Hiện dữ liệu cá nhân", "Reveal personal data"),
            L::RevealNote => (
                "Việc xem dữ liệu cá nhân được ghi vào nhật ký kiểm toán.",
                "Seeing personal data is recorded in the audit log.",
            ),
            L::Masked => ("đã che", "masked"),
            L::RedactedHere => ("Đã lược bỏ ở bản sao này:", "Redacted from this copy:"),
            L::TestRecord => ("Thử một bản ghi", "Test a record"),
            L::RecordType => ("Loại bản ghi", "Record type"),
            L::AsClient => ("Gửi với tư cách khách hàng", "As client"),
            L::Payload => ("Nội dung (JSON)", "Payload (JSON)"),
            L::Run => ("Thử", "Test"),
            L::WouldAccept => ("Sẽ được nhận", "Would be accepted"),
            L::WouldRefuse => ("Sẽ bị từ chối", "Would be refused"),
            L::Route => ("Tuyến", "Route"),
            L::Matched => ("khớp", "matches"),
            L::TestNote => (
                "Không ghi gì: quyền, lược đồ và định tuyến được kiểm tra như khi gửi thật.",
                "Nothing is written: access, schema and routing are judged as for a real record.",
            ),
            L::Lag => ("Bản ghi chờ giao", "Waiting (lag)"),
            L::TopRefusals => ("Lý do từ chối thường gặp nhất", "Top refusal reasons"),
            L::Checkpoint => ("Điểm kiểm chứng nhật ký", "Audit checkpoint"),
            L::CheckpointAge => ("giây trước", "seconds ago"),
            L::NoCheckpoint => ("chưa có", "none yet"),
            L::History => ("Lịch sử phiên bản", "Version history"),
            L::RecentOutcomes => (
                "Kết quả giao gần đây (trong 2000 sự kiện cuối của nhật ký)",
                "Recent deliveries (among the trail's last 2000 events)",
            ),
            L::Outcomes => ("Kết quả gần đây", "Recent outcomes"),
            L::Proof => (
                "Tải bằng chứng (kiểm tra bằng mekong verify)",
                "Download its proof (check it with mekong verify)",
            ),
            L::HistoryNote => (
                "Từ nhật ký kiểm toán (5000 sự kiện gần nhất); nội dung so sánh là bản đang lưu.",
                "From the audit trail (its latest 5000 events); the stored text is the current version.",
            ),
            L::PayloadsHidden => (
                "Vai trò kiểm toán không xem nội dung bản ghi.",
                "The auditor role does not see payloads.",
            ),
            L::AuditWindowNote => (
                "Mỗi trang đọc 500 sự kiện gần nhất của nhật ký và chỉ hiện những việc do người làm.",
                "Each page reads the trail's 500 events before it and shows what people did.",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vietnamese_is_the_default_and_each_language_has_its_text() {
        assert_eq!(Lang::default(), Lang::Vi);
        assert_eq!(Lang::Vi.t(L::SignIn), "Đăng nhập");
        assert_eq!(Lang::En.t(L::SignIn), "Sign in");
        assert_eq!(Lang::parse("en"), Some(Lang::En));
        assert_eq!(Lang::parse("fr"), None);
    }
}
